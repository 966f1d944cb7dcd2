package e2e

import (
	"strings"
	"testing"
)

// TestDockerContextRecipe runs the README's recipe: a docker context for
// secretd's socket, so `docker --context secretd secret ...` works without
// switching DOCKER_HOST. DOCKER_CONFIG keeps the context out of root's
// own docker configuration.
func TestDockerContextRecipe(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	env := []string{"DOCKER_CONFIG=" + t.TempDir()}
	dockerCtx := func(stdin string, args ...string) result {
		t.Helper()
		return runCmd(t, env, stdin, "docker", args...)
	}
	if r := dockerCtx("", "context", "create", "secretd", "--docker", "host=unix://"+d.sock); r.code != 0 {
		t.Fatalf("docker context create: %s", r)
	}
	r := dockerCtx("s3cret", "--context", "secretd", "secret", "create", "--label", "team=web", "via_context", "-")
	if r.code != 0 {
		t.Fatalf("docker --context secretd secret create: %s", r)
	}
	id := strings.TrimSpace(r.stdout)
	r = dockerCtx("", "--context", "secretd", "secret", "ls", "--format", "{{.ID}} {{.Name}}")
	if r.code != 0 || strings.TrimSpace(r.stdout) != id+" via_context" {
		t.Errorf("docker --context secretd secret ls: %s", r)
	}
	if ls := d.mustCLI("", "secret", "ls", "--format", "{{.Name}} {{.Labels}}"); ls != "via_context team=web" {
		t.Errorf("secretd secret ls: %q", ls)
	}
	// The engine's commands in secretd's context say where they belong
	// instead of "page not found"; docker run does not take that for a
	// missing image.
	for _, args := range [][]string{{"ps"}, {"images"}, {"run", "--pull", "never", "--network", "none", image, "true"}} {
		r := dockerCtx("", append([]string{"--context", "secretd"}, args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, "Error response from daemon: this is secretd, which serves secrets and configs only (docker secret ..., docker config ...), not ") ||
			!strings.Contains(r.stderr, "docker --context default") || strings.Contains(r.stderr, "Unable to find image") {
			t.Errorf("docker --context secretd %s: %s", strings.Join(args, " "), r)
		}
	}
	// The context is the CLI's: the engine's own commands still go to the
	// default context.
	if r := dockerCtx("", "secret", "ls"); r.code == 0 && strings.Contains(r.stdout, "via_context") {
		t.Errorf("docker secret ls without --context reached secretd: %s", r)
	}
}
