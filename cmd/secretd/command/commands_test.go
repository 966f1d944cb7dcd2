package command

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/golden"
	"github.com/secretd/secretd/cmd/secretd/internal/fakeclient"
)

// result is what a user sees of one command line: its exit status and
// both streams.
type result struct {
	status      int
	out, errOut string
}

// transcript is r as a golden file holds it.
func (r result) transcript() string {
	return fmt.Sprintf("exit status %d\n--- stdout\n%s--- stderr\n%s", r.status, r.out, r.errOut)
}

// run runs the whole command tree on args, as main does, with fc as the
// daemon and stdin as the standard input.
func run(t *testing.T, fc *fakeclient.Client, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	c := cli.NewCli(strings.NewReader(stdin), &out, &errb).WithClient(fc)
	old := os.Args
	defer func() { os.Args = old }()
	os.Args = append([]string{"secretd"}, args...)
	status := Execute(c)
	return result{status: status, out: out.String(), errOut: errb.String()}
}

// daemonError is an error the daemon answered with, as the real client
// returns it.
func daemonError(code int, format string, args ...any) error {
	return &client.Error{StatusCode: code, Message: fmt.Sprintf(format, args...)}
}

// `secret rm a b c` tries every name, prints each one removed, words each
// failure on its own line as docker does, and exits 1 if any failed.
func TestSecretRmPartialFailure(t *testing.T) {
	var tried []string
	fc := &fakeclient.Client{SecretRemoveFunc: func(_ context.Context, ref string) error {
		tried = append(tried, ref)
		switch ref {
		case "missing":
			return daemonError(404, "secret '%s' not found", ref)
		case "db_password":
			return daemonError(409, "secret 'db_password' is in use by the following container: web")
		}
		return nil
	}}
	r := run(t, fc, "", "secret", "rm", "api_key", "missing", "db_password", "tls")
	if want := []string{"api_key", "missing", "db_password", "tls"}; !reflect.DeepEqual(tried, want) {
		t.Errorf("removed %q, want every name in order %q", tried, want)
	}
	golden.Assert(t, "secret-rm-partial.golden", r.transcript())
}

func TestSecretRmOneFailure(t *testing.T) {
	fc := &fakeclient.Client{SecretRemoveFunc: func(_ context.Context, ref string) error {
		return daemonError(404, "secret '%s' not found", ref)
	}}
	r := run(t, fc, "", "secret", "remove", "nope")
	golden.Assert(t, "secret-rm-one-failure.golden", r.transcript())
}

func TestSecretRmAll(t *testing.T) {
	fc := &fakeclient.Client{SecretRemoveFunc: func(context.Context, string) error { return nil }}
	r := run(t, fc, "", "secret", "rm", "a", "b")
	if r.status != 0 || r.out != "a\nb\n" || r.errOut != "" {
		t.Errorf("rm a b: %+v", r)
	}
}

func TestSecretRmNoArgs(t *testing.T) {
	r := run(t, &fakeclient.Client{}, "", "secret", "rm")
	if r.status == 0 || !strings.Contains(r.errOut, "requires at least 1 arg") {
		t.Errorf("rm without a name: %+v", r)
	}
}

// `secret update NAME -` sends stdin's bytes as they are, with --keep, and
// prints the new version.
func TestSecretUpdateFromStdin(t *testing.T) {
	var gotRef string
	var gotData []byte
	gotKeep := -1
	fc := &fakeclient.Client{SecretUpdateFunc: func(_ context.Context, ref string, data []byte, keep int) (api.Secret, error) {
		// The command clears its copy once the call returns.
		gotRef, gotData, gotKeep = ref, bytes.Clone(data), keep
		return api.Secret{Secret: swarm.Secret{ID: "wk5fpokcz8wbwmuw587izl1in"}, CurrentVersion: 4}, nil
	}}
	r := run(t, fc, "new-password\n", "secret", "update", "--keep", "3", "db_password", "-")
	if gotRef != "db_password" || string(gotData) != "new-password\n" || gotKeep != 3 {
		t.Errorf("sent ref %q data %q keep %d; want db_password, stdin as is, 3", gotRef, gotData, gotKeep)
	}
	golden.Assert(t, "secret-update.golden", r.transcript())

	// Without --keep the daemon's default applies: 0 is sent.
	run(t, fc, "x", "secret", "update", "db_password", "-")
	if gotKeep != 0 || string(gotData) != "x" {
		t.Errorf("without --keep: sent keep %d data %q", gotKeep, gotData)
	}
}

// A version that is stored but did not reach every container is a failure
// the user sees, with the daemon's words naming the container.
func TestSecretUpdateRotationFailure(t *testing.T) {
	fc := &fakeclient.Client{SecretUpdateFunc: func(context.Context, string, []byte, int) (api.Secret, error) {
		return api.Secret{}, daemonError(500, "version 2 of secret 'db_password' is stored but did not reach 1 container, it still reads the previous version: web (no space left on device)")
	}}
	r := run(t, fc, "v2", "secret", "update", "db_password", "-")
	golden.Assert(t, "secret-update-rotation-failure.golden", r.transcript())
}

// A version that reaches a container only at its next start (a file bound
// at an absolute target) is a success that says so: stdout as always, and
// on stderr one line per such container, naming it and its file.
func TestSecretUpdateNamesContainersForLater(t *testing.T) {
	fc := &fakeclient.Client{SecretUpdateFunc: func(context.Context, string, []byte, int) (api.Secret, error) {
		return api.Secret{Secret: swarm.Secret{ID: "2gvsi464mvdldnjpr6qjwsrjk", Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: "site.conf"}}}, CurrentVersion: 2,
			Rotation: &api.Rotation{Version: 2, Updated: 1, Containers: []api.ContainerRotation{
				{ContainerID: "4f1c2a3b5d6e", ContainerName: "nginx", Targets: []string{"/etc/nginx/conf.d/site.conf"}, Gets: api.RotationNextStart,
					Reason: "/etc/nginx/conf.d/site.conf is a file bound at an absolute target, which a running container keeps as it was: restart the container to give it the new version, or run it with the label secretd.on-update=restart"},
				{ContainerID: "9a8b7c6d5e4f", ContainerName: "nginx-reload", Targets: []string{"/etc/nginx/conf.d/site.conf"}, Gets: api.RotationRestarting,
					Reason: "/etc/nginx/conf.d/site.conf is a file bound at an absolute target, which a running container keeps as it was: secretd is restarting it, as secretd.on-update=restart asks"},
			}}}, nil
	}}
	r := run(t, fc, "server { listen 8443 ssl; }", "secret", "update", "2gvsi", "-")
	golden.Assert(t, "secret-update-next-start.golden", r.transcript())
}

// Bad input is refused before the daemon is asked: the fake fails any call.
func TestSecretUpdateNoData(t *testing.T) {
	for _, args := range [][]string{
		{"secret", "update", "db_password"},
		{"secret", "update", "--generate", "8", "db_password", "-"},
	} {
		r := run(t, &fakeclient.Client{}, "", args...)
		if r.status != 1 || strings.Contains(r.errOut, "fakeclient") || !strings.HasPrefix(r.errOut, "Error: ") {
			t.Errorf("%q: %+v", args, r)
		}
	}
}

// `container update` turns its flags into one request, in the order given,
// and prints what the container holds afterwards.
func TestContainerUpdateFlags(t *testing.T) {
	var gotRef string
	var gotReq api.ContainerUpdateRequest
	fc := &fakeclient.Client{ContainerUpdateFunc: func(_ context.Context, ref string, req api.ContainerUpdateRequest) (api.Task, error) {
		gotRef, gotReq = ref, req
		return api.Task{ContainerName: "web", Secrets: []api.TaskSecret{
			{Name: "api_key", Target: "api_key"},
			{Name: "tls", Target: "certs/tls.key"},
		}}, nil
	}}
	r := run(t, fc, "", "container", "update",
		"--secret-add", "api_key", "--secret-add", "source=tls,target=certs/tls.key,mode=0400",
		"--secret-rm", "old_password", "--volume", "web-tls", "--shared", "web")
	want := api.ContainerUpdateRequest{
		SecretAdd: []string{"api_key", "source=tls,target=certs/tls.key,mode=0400"},
		SecretRm:  []string{"old_password"},
		Volume:    "web-tls",
		Shared:    true,
	}
	if gotRef != "web" || !reflect.DeepEqual(gotReq, want) {
		t.Errorf("sent %q %+v, want web %+v", gotRef, gotReq, want)
	}
	golden.Assert(t, "container-update.golden", r.transcript())

	// Without --volume or --shared the daemon picks the volume and refuses
	// a shared one.
	run(t, fc, "", "container", "update", "--secret-rm", "x", "db")
	if want := (api.ContainerUpdateRequest{SecretRm: []string{"x"}}); gotRef != "db" || !reflect.DeepEqual(gotReq, want) {
		t.Errorf("sent %q %+v, want db %+v", gotRef, gotReq, want)
	}
}

// A revoke of the last secret says the container holds none, rather than
// printing the name and nothing after it.
func TestContainerUpdateNoneLeft(t *testing.T) {
	fc := &fakeclient.Client{ContainerUpdateFunc: func(context.Context, string, api.ContainerUpdateRequest) (api.Task, error) {
		return api.Task{ContainerName: "web"}, nil
	}}
	r := run(t, fc, "", "container", "update", "web", "--secret-rm", "x")
	golden.Assert(t, "container-update-none-left.golden", r.transcript())
}

func TestContainerUpdateRefused(t *testing.T) {
	fc := &fakeclient.Client{ContainerUpdateFunc: func(context.Context, string, api.ContainerUpdateRequest) (api.Task, error) {
		return api.Task{}, daemonError(409, "volume 'shared' is also used by container other: give --shared to change it for both")
	}}
	r := run(t, fc, "", "container", "update", "--secret-rm", "x", "web")
	golden.Assert(t, "container-update-refused.golden", r.transcript())
}

func psTasks() []api.Task {
	since := time.Date(2026, 11, 22, 16, 0, 0, 0, time.UTC)
	return []api.Task{
		{ContainerID: "4f1c2a3b5d6e7f8091a2b3c4d5e6f708", ContainerName: "web", Volume: "web_secrets", Mount: "/run/secrets", Since: since,
			Secrets: []api.TaskSecret{
				{ID: "wk5fpokcz8wbwmuw587izl1in", Name: "db_password", Version: 2, Target: "db_password"},
				{ID: "t5rb04xcqyrqiglmfwrfs122y", Name: "api_key", Version: 1, Pinned: true, Target: "api_key"},
			}},
		{ContainerID: "9a8b7c6d5e4f30211a2b3c4d5e6f7081", ContainerName: "redis", Volume: "redis_secrets", Mount: "/run/secrets", Since: since,
			Secrets: []api.TaskSecret{
				{ID: "wk5fpokcz8wbwmuw587izl1in", Name: "db_password", Version: 2, Target: "redis_pass"},
			}},
	}
}

// `ps` filters what the daemon's task list holds; a CONTAINER argument
// that names nothing is an error after the rest is listed.
func TestPsFilters(t *testing.T) {
	fc := &fakeclient.Client{TasksFunc: func(context.Context) ([]api.Task, error) { return psTasks(), nil }}
	// SINCE depends on the clock: the table leaves it out.
	const format = "table {{.Name}}\t{{.Secret}}\t{{.Version}}\t{{.Target}}\t{{.Volume}}"
	for _, tt := range []struct {
		golden string
		args   []string
	}{
		{"ps-filter-secret-id.golden", []string{"--filter", "secret=wk5fpo"}},
		// Different keys must all match: web holds no redis_secrets volume.
		{"ps-filter-container-and-volume.golden", []string{"--filter", "container=web", "--filter", "volume=redis_secrets"}},
		{"ps-quiet-volume.golden", []string{"-q", "--filter", "volume=redis_secrets"}},
		{"ps-missing-container.golden", []string{"web", "nosuch"}},
		{"ps-bad-filter.golden", []string{"--filter", "image=redis"}},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			args := append([]string{"ps", "--format", format}, tt.args...)
			if tt.args[0] == "-q" {
				args = append([]string{"ps"}, tt.args...)
			}
			golden.Assert(t, tt.golden, run(t, fc, "", args...).transcript())
		})
	}
}

func TestPsDaemonDown(t *testing.T) {
	fc := &fakeclient.Client{TasksFunc: func(context.Context) ([]api.Task, error) {
		return nil, fmt.Errorf("cannot connect to secretd at unix:///run/secretd/secretd.sock: is the daemon running? (%w)", os.ErrNotExist)
	}}
	r := run(t, fc, "", "ps")
	if r.status != 1 || r.out != "" || r.errOut != "Error: cannot connect to secretd at unix:///run/secretd/secretd.sock: is the daemon running? (file does not exist)\n" {
		t.Errorf("ps with the daemon down: %+v", r)
	}
}

func TestStatus(t *testing.T) {
	st := api.Status{
		Version: "1.2.3", Locked: true, Autolock: true, Store: "bolt /var/lib/secretd/secrets.db",
		Engine: "unix:///var/run/docker.sock", EngineError: "connection refused",
		Secrets: 12, Mounts: 3, SpareMounts: 1, Goroutines: 40, OpenFDs: 17, SwapOn: true, VolumeDriver: "secretd",
	}
	fc := &fakeclient.Client{StatusFunc: func(context.Context) (api.Status, error) { return st, nil }}
	golden.Assert(t, "status-locked.golden", run(t, fc, "", "status").transcript())
	golden.Assert(t, "status-format.golden", run(t, fc, "", "status", "--format", "{{.Locked}} {{.Secrets}} {{.EngineError}}").transcript())
}

// `config create --template-driver golang NAME -` sends stdin's bytes as
// they are, with the labels and the template driver, and prints the ID.
func TestConfigCreateTemplateFromStdin(t *testing.T) {
	var gotName, gotDriver string
	var gotData []byte
	var gotLabels map[string]string
	fc := &fakeclient.Client{ConfigCreateFunc: func(_ context.Context, name string, labels map[string]string, data []byte, driver string) (string, error) {
		gotName, gotLabels, gotData, gotDriver = name, labels, bytes.Clone(data), driver
		return "k7u0ahxw5tvq8rzqz0j5y2c1e", nil
	}}
	tpl := "[db]\ndsn = app:{{ secret \"db_password\" }}@db\n"
	r := run(t, fc, tpl, "config", "create", "--template-driver", "golang", "--label", "app=api", "app.ini", "-")
	if gotName != "app.ini" || string(gotData) != tpl || gotDriver != "golang" || gotLabels["app"] != "api" {
		t.Errorf("sent %q %q %q %v", gotName, gotData, gotDriver, gotLabels)
	}
	golden.Assert(t, "config-create.golden", r.transcript())
}

// `config rm a b c` tries every name and words each failure as docker does.
func TestConfigRmPartialFailure(t *testing.T) {
	fc := &fakeclient.Client{ConfigRemoveFunc: func(_ context.Context, ref string) error {
		switch ref {
		case "missing":
			return daemonError(404, "config '%s' not found", ref)
		case "site.conf":
			return daemonError(409, "config 'site.conf' is in use by the following container: web")
		}
		return nil
	}}
	r := run(t, fc, "", "config", "rm", "app.ini", "missing", "site.conf")
	golden.Assert(t, "config-rm-partial.golden", r.transcript())
}

// `config update NAME -` rotates in place and prints the new version; a
// rotation a container did not take is a failure naming it.
func TestConfigUpdate(t *testing.T) {
	var gotData []byte
	fc := &fakeclient.Client{ConfigUpdateFunc: func(_ context.Context, ref string, data []byte, keep int) (api.Config, error) {
		gotData = bytes.Clone(data)
		if string(data) == "breaks" {
			return api.Config{}, daemonError(500, "version 2 of config 'site.conf' is stored but did not reach 1 container, it still reads the previous version: web (no space left on device)")
		}
		return api.Config{Config: swarm.Config{ID: "3nqcb2m2o5bbbq6vzcvkqylyg"}, CurrentVersion: 2}, nil
	}}
	r := run(t, fc, "server { listen 443 ssl; }\n", "config", "update", "site.conf", "-")
	if string(gotData) != "server { listen 443 ssl; }\n" {
		t.Errorf("sent %q", gotData)
	}
	golden.Assert(t, "config-update.golden", r.transcript())
	r = run(t, fc, "breaks", "config", "update", "site.conf", "-")
	golden.Assert(t, "config-update-rotation-failure.golden", r.transcript())
	// Without data the daemon is not asked.
	r = run(t, &fakeclient.Client{}, "", "config", "update", "site.conf")
	if r.status == 0 || strings.Contains(r.errOut, "fakeclient") {
		t.Errorf("update without FILE: %+v", r)
	}
}

// `secret create --template-driver golang` sends a template; with --driver
// it is refused before the daemon is asked.
func TestSecretCreateTemplate(t *testing.T) {
	var gotDriver string
	fc := &fakeclient.Client{SecretCreateTemplateFunc: func(_ context.Context, name string, _ map[string]string, data []byte, driver string) (string, error) {
		gotDriver = driver
		return "wk5fpokcz8wbwmuw587izl1in", nil
	}}
	r := run(t, fc, `dsn=app:{{ secret "db_password" }}@db`, "secret", "create", "--template-driver", "golang", "dsn", "-")
	if r.status != 0 || gotDriver != "golang" || r.out != "wk5fpokcz8wbwmuw587izl1in\n" {
		t.Errorf("create template: %+v, driver %q", r, gotDriver)
	}
	r = run(t, &fakeclient.Client{}, "", "secret", "create", "--template-driver", "golang", "--driver", "shell", "dsn")
	if r.status != 1 || !strings.Contains(r.errOut, "--template-driver makes the data a template") {
		t.Errorf("template with a driver: %+v", r)
	}
}

// --config-add and --config-rm go in the same request as the secrets'; the
// answer names configs as such.
func TestContainerUpdateConfigs(t *testing.T) {
	var gotReq api.ContainerUpdateRequest
	fc := &fakeclient.Client{ContainerUpdateFunc: func(_ context.Context, ref string, req api.ContainerUpdateRequest) (api.Task, error) {
		gotReq = req
		return api.Task{ContainerName: "web", Secrets: []api.TaskSecret{
			{Name: "db_password", Target: "db_password"},
			{Kind: "config", Name: "app.ini", Target: "conf/app.ini"},
		}}, nil
	}}
	r := run(t, fc, "", "container", "update", "--config-add", "source=app.ini,target=conf/app.ini", "--config-rm", "old.ini", "web")
	want := api.ContainerUpdateRequest{ConfigAdd: []string{"source=app.ini,target=conf/app.ini"}, ConfigRm: []string{"old.ini"}}
	if !reflect.DeepEqual(gotReq, want) {
		t.Errorf("sent %+v, want %+v", gotReq, want)
	}
	golden.Assert(t, "container-update-configs.golden", r.transcript())
}

// standInDocker puts a docker on $PATH that records that it ran; ran
// reports whether it did.
func standInDocker(t *testing.T) (ran func() bool) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte("#!/bin/sh\ntouch \"$0.ran\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return func() bool {
		_, err := os.Stat(filepath.Join(dir, "docker.ran"))
		return err == nil
	}
}

// `secretd run` asks the daemon before docker: stopped, it fails at once
// with the words `secret ls` uses; a driver it does not serve is named.
func TestRunChecksTheDaemonFirst(t *testing.T) {
	down := fmt.Errorf("cannot connect to secretd at unix:///run/secretd/secretd.sock: is the daemon running? (%w)", os.ErrNotExist)
	fc := &fakeclient.Client{
		StatusFunc:      func(context.Context) (api.Status, error) { return api.Status{}, down },
		SecretTableFunc: func(context.Context, filters.Args) (api.SecretTable, error) { return api.SecretTable{}, down },
	}
	ran := standInDocker(t)
	r := run(t, fc, "", "run", "--secret", "db_password", "--", "--rm", "busybox", "true")
	golden.Assert(t, "run-daemon-down.golden", r.transcript())
	if ls := run(t, fc, "", "secret", "ls"); ls.errOut != r.errOut {
		t.Errorf("secret ls says %q, run says %q: want the same words", ls.errOut, r.errOut)
	}

	fc = &fakeclient.Client{StatusFunc: func(context.Context) (api.Status, error) {
		return api.Status{VolumeDriver: "secretd"}, nil
	}}
	r = run(t, fc, "", "run", "--driver", "secretdd", "--secret", "db_password", "--", "--rm", "busybox", "true")
	golden.Assert(t, "run-wrong-driver.golden", r.transcript())
	if ran() {
		t.Error("docker ran")
	}
}

// A mistyped secretd.on-update label fails `secretd run` before docker
// runs, naming the label and its value, as a bad --secret does: the
// container would otherwise start and never be signalled.
func TestRunRefusesBadOnUpdate(t *testing.T) {
	fc := &fakeclient.Client{StatusFunc: func(context.Context) (api.Status, error) {
		return api.Status{VolumeDriver: "secretd"}, nil
	}}
	ran := standInDocker(t)
	r := run(t, fc, "", "run", "--secret", "site.conf", "--", "-d", "--label", "secretd.on-update=signal:SIGHUPP", "nginx")
	golden.Assert(t, "run-bad-on-update.golden", r.transcript())
	if ran() {
		t.Error("docker ran")
	}
}
