package command

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/swarm"
	"github.com/spf13/cobra"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/cmd/secretd/cli"
)

// fakeDaemon answers the two lists completion asks for, on a unix socket,
// and returns its host.
func fakeDaemon(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	secret := func(name string) api.Secret {
		return api.Secret{Secret: swarm.Secret{ID: "id-" + name, Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: name}}}}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v"+api.APIVersion+"/secrets", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]api.Secret{secret("db_password"), secret("api_key"), secret("db_root_password")})
	})
	mux.HandleFunc("GET /v"+api.APIVersion+"/secretd/configs", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.SecretTable{IDs: []string{"c1", "c2"}, Names: []string{"site.conf", "app.ini"}})
	})
	mux.HandleFunc("GET /v"+api.APIVersion+"/secretd/tasks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]api.Task{
			{ContainerID: "aaaa1111", ContainerName: "web", Secrets: []api.TaskSecret{{Name: "api_key"}, {Name: "db_password"}}},
			{ContainerID: "bbbb2222", ContainerName: "worker", Secrets: []api.TaskSecret{{Name: "db_root_password"}}},
		})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock
}

// complete runs the shell's completion request (`secretd __complete ARGS`)
// and returns the candidates and the directive cobra prints last.
func complete(t *testing.T, host string, args ...string) ([]string, cobra.ShellCompDirective) {
	t.Helper()
	var out, errb bytes.Buffer
	c := cli.NewCli(strings.NewReader(""), &out, &errb)
	root := newFullRoot(c)
	t.Setenv("SECRETD_HOST", host)
	root.SetArgs(append([]string{cobra.ShellCompRequestCmd}, args...))
	if err := root.Execute(); err != nil {
		t.Fatalf("__complete %q: %v", args, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	d, err := strconv.Atoi(strings.TrimPrefix(last, ":"))
	if err != nil {
		t.Fatalf("__complete %q: no directive in %q", args, out.String())
	}
	var names []string
	for _, l := range lines[:len(lines)-1] {
		name, _, _ := strings.Cut(l, "\t")
		names = append(names, name)
	}
	return names, cobra.ShellCompDirective(d)
}

// TestCompletion: names come from the daemon where a command takes names,
// and no local file is offered where none belongs.
func TestCompletion(t *testing.T) {
	host := fakeDaemon(t)
	const noFile, files = cobra.ShellCompDirectiveNoFileComp, cobra.ShellCompDirectiveDefault
	all := []string{"api_key", "db_password", "db_root_password"}
	for _, c := range []struct {
		args []string
		want []string
		dir  cobra.ShellCompDirective
	}{
		{[]string{"secret", "rm", ""}, all, noFile},
		{[]string{"secret", "rm", "db_password", "db"}, []string{"db_root_password"}, noFile},
		{[]string{"secret", "inspect", "a"}, []string{"api_key"}, noFile},
		// The shell hands over the global flags too.
		{[]string{"-H", host, "secret", "inspect", "a"}, []string{"api_key"}, noFile},
		{[]string{"secret", "update", ""}, all, noFile},
		// update's second argument is the FILE with the new data.
		{[]string{"secret", "update", "db_password", ""}, nil, files},
		{[]string{"secret", "create", ""}, nil, noFile},
		{[]string{"secret", "create", "new_secret", ""}, nil, files},
		{[]string{"secret", "ls", ""}, nil, noFile},
		{[]string{"config", "rm", ""}, []string{"app.ini", "site.conf"}, noFile},
		{[]string{"config", "inspect", "s"}, []string{"site.conf"}, noFile},
		{[]string{"config", "update", "site.conf", ""}, nil, files},
		{[]string{"config", "create", "x", ""}, nil, files},
		{[]string{"secret", "ls", "--format", ""}, nil, noFile},
		{[]string{"container", "update", ""}, []string{"web", "worker"}, noFile},
		{[]string{"container", "update", "web", ""}, nil, noFile},
		{[]string{"container", "update", "web", "--secret-add", ""}, all, noFile},
		{[]string{"container", "update", "web", "--secret-rm", ""}, []string{"api_key", "db_password"}, noFile},
		{[]string{"ps", "w"}, []string{"web", "worker"}, noFile},
		{[]string{"ps", "--filter", ""}, []string{"config=", "container=", "secret=", "volume="}, noFile | cobra.ShellCompDirectiveNoSpace},
		{[]string{"status", ""}, nil, noFile},
		{[]string{"daemon", ""}, nil, noFile},
		{[]string{"daemon", "--data-root", ""}, nil, files},
		{[]string{"run", "--secret", ""}, all, noFile},
		{[]string{"run", "--config", "s"}, []string{"site.conf"}, noFile},
		{[]string{"run", "--config=a"}, []string{"--config=app.ini"}, noFile},
		{[]string{"run", "--secret=db"}, []string{"--secret=db_password", "--secret=db_root_password"}, noFile},
		{[]string{"run", "--secret", "a", "--secret-t"}, []string{"--secret-target-dir"}, noFile},
		// From docker's first argument on, the shell completes as for docker.
		{[]string{"run", "--secret", "a", "--", ""}, nil, files},
		{[]string{"run", "--secret", "a", "-v", ""}, nil, files},
	} {
		got, dir := complete(t, host, c.args...)
		if !slices.Equal(got, c.want) || dir != c.dir {
			t.Errorf("secretd %s<TAB>: %q directive %d, want %q directive %d", strings.Join(c.args, " "), got, dir, c.want, c.dir)
		}
	}
}

// TestCompletionNoDaemon: with no daemon to ask, a name completes to
// nothing, never to local files.
func TestCompletionNoDaemon(t *testing.T) {
	got, dir := complete(t, "unix://"+filepath.Join(t.TempDir(), "none.sock"), "secret", "rm", "")
	if len(got) != 0 || dir != cobra.ShellCompDirectiveNoFileComp {
		t.Errorf("secret rm <TAB> without a daemon: %q directive %d", got, dir)
	}
}
