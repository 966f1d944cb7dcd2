package templating

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// file is a File over fixed data; a missing Load is a file that fails.
func file(kind Kind, name, target, data string, tpl bool) File {
	return File{Kind: kind, Name: name, Target: target, Load: func() ([]byte, bool, error) { return []byte(data), tpl, nil }}
}

var node = Node{ID: "n0de1d", Hostname: "host1", Platform: Platform{Architecture: "x86_64", OS: "linux"}}

func identity(env ...string) func() (Identity, error) {
	return func() (Identity, error) {
		return Identity{
			Context: NewContext(Container{ID: "c0ffee", Name: "web", Labels: map[string]string{"team": "a"}}, node),
			Env:     env,
		}, nil
	}
}

func render(t *testing.T, r *Renderer, i int) Result {
	t.Helper()
	res, err := r.Render(i)
	if err != nil {
		t.Fatalf("render %d: %v", i, err)
	}
	return res
}

// TestContext: every field of Swarm's context, for a plain container and a
// compose one.
func TestContext(t *testing.T) {
	plain := NewContext(Container{ID: "c0ffee", Name: "web", Labels: map[string]string{"team": "a"}}, node)
	want := Context{
		Service: Service{ID: "c0ffee", Name: "web", Labels: map[string]string{"team": "a"}},
		Node:    node,
		Task:    Task{ID: "c0ffee", Name: "web", Slot: "n0de1d"},
	}
	if !reflect.DeepEqual(plain, want) {
		t.Errorf("plain container:\n got %+v\nwant %+v", plain, want)
	}
	labels := map[string]string{LabelComposeProject: "shop", LabelComposeService: "api", LabelComposeNumber: "2"}
	c := NewContext(Container{ID: "beef", Name: "shop-api-2", Labels: labels}, node)
	if c.Service.Name != "shop_api" || c.Service.ID != ServiceID("shop_api") || len(c.Service.ID) != 25 ||
		c.Task.Slot != "2" || c.Task.Name != "shop-api-2" || c.Task.ID != "beef" || c.Service.Labels["com.docker.compose.service"] != "api" {
		t.Errorf("compose container: %+v", c)
	}
	other := NewContext(Container{ID: "f00d", Name: "shop-api-3", Labels: map[string]string{LabelComposeProject: "shop", LabelComposeService: "api", LabelComposeNumber: "3"}}, node)
	if other.Service.ID != c.Service.ID {
		t.Error("two replicas of one compose service have different service IDs")
	}
	if ServiceID("shop_web") == c.Service.ID {
		t.Error("two services share an ID")
	}
	if empty := NewContext(Container{ID: "x", Name: "x"}, node); empty.Service.Labels == nil {
		t.Error("no labels is not an empty map: {{.Service.Labels.k}} would not say the key is missing")
	}
	r := &Renderer{Files: []File{file(Config, "ctx", "ctx", `{{.Service.ID}} {{.Service.Name}} {{.Service.Labels.team}} {{.Task.ID}} {{.Task.Name}} {{.Task.Slot}} {{.Node.ID}} {{.Node.Hostname}} {{.Node.Platform.OS}} {{.Node.Platform.Architecture}}`, true)}, Identity: identity()}
	if got := string(render(t, r, 0).Data); got != "c0ffee web a c0ffee web n0de1d n0de1d host1 linux x86_64" {
		t.Errorf("every field: %q", got)
	}
}

func TestSecretFunction(t *testing.T) {
	r := &Renderer{Files: []File{
		file(Secret, "dsn", "dsn", `dsn=app:{{ secret "db_password" }}@db`, true),
		file(Secret, "db_password", "db_password", "hunter2", false),
	}}
	res := render(t, r, 0)
	if string(res.Data) != "dsn=app:hunter2@db" || !res.Sensitive || !reflect.DeepEqual(res.Reads, []int{1}) {
		t.Errorf("got %q sensitive %v reads %v", res.Data, res.Sensitive, res.Reads)
	}
}

// A config that reads a secret is sensitive; one that reads only configs
// is not.
func TestConfigFunctionAndSensitivity(t *testing.T) {
	r := &Renderer{Files: []File{
		file(Config, "site.conf", "/etc/nginx/conf.d/site.conf", `server_name {{ config "hostname" }};`, true),
		file(Config, "hostname", "/hostname", "example.org", false),
		file(Config, "app.conf", "app.conf", `{{ config "site.conf" | len }} {{ secret "key" }}`, true),
		file(Secret, "key", "tls/key", "k3y", false),
		file(Config, "by-abs", "by-abs", `{{ config "/hostname" }}`, true),
	}}
	res := render(t, r, 0)
	if string(res.Data) != "server_name example.org;" || res.Sensitive || !reflect.DeepEqual(res.Reads, []int{1}) {
		t.Errorf("config reading a config: %q sensitive %v reads %v", res.Data, res.Sensitive, res.Reads)
	}
	if _, err := r.Render(2); err == nil || !strings.Contains(err.Error(), `reads config "site.conf"`) {
		// Configs are found by their declared target: "site.conf" is not
		// /etc/nginx/conf.d/site.conf.
		t.Errorf("config by a name that is not its target: %v", err)
	}
	r.Files[2] = file(Config, "app.conf", "app.conf", `{{ config "/etc/nginx/conf.d/site.conf" | len }} {{ secret "tls/key" }}`, true)
	r = &Renderer{Files: r.Files}
	res = render(t, r, 2)
	if string(res.Data) != "24 k3y" || !res.Sensitive || !reflect.DeepEqual(res.Reads, []int{0, 1, 3}) {
		t.Errorf("config reading a rendered config and a secret: %q sensitive %v reads %v", res.Data, res.Sensitive, res.Reads)
	}
	if got := string(render(t, r, 4).Data); got != "example.org" {
		t.Errorf("config by absolute target: %q", got)
	}
}

func TestEnvFunction(t *testing.T) {
	r := &Renderer{Files: []File{file(Config, "e", "e", `[{{ env "A" }}][{{ env "B" }}][{{ env "NOPE" }}]`, true)},
		Identity: identity("A=1", "B=x=y", "A=2", "NOEQUALS")}
	if got := string(render(t, r, 0).Data); got != "[2][x=y][]" {
		t.Errorf("env: %q (the last A wins, values keep '=', an unset variable is empty as in Swarm)", got)
	}
}

func TestJoinFunction(t *testing.T) {
	r := &Renderer{Files: []File{file(Config, "j", "j", `{{ join "," "a" "b" "c" }}|{{ join "-" }}`, true)}}
	if got := string(render(t, r, 0).Data); got != "a,b,c|" {
		t.Errorf("join: %q", got)
	}
}

// The container's identity is asked for only by a template that reads it.
func TestIdentityAskedOnlyWhenRead(t *testing.T) {
	asked := 0
	who := func() (Identity, error) { asked++; return identity()() }
	r := &Renderer{Files: []File{
		file(Config, "plain", "plain", `static {{ "text" }}`, true),
		file(Config, "ctx", "ctx", `{{ .Task.Name }}`, true),
		file(Config, "var", "var", `{{ $x := 1 }}{{ $x }}`, true),
	}, Identity: who}
	render(t, r, 0)
	render(t, r, 2)
	if asked != 0 {
		t.Fatalf("identity asked %d times for templates that do not read it", asked)
	}
	render(t, r, 1)
	if asked != 1 {
		t.Fatalf("identity asked %d times", asked)
	}
	r2 := &Renderer{Files: []File{file(Config, "ctx", "ctx", `{{ .Task.Name }}`, true)},
		Identity: func() (Identity, error) { return Identity{}, errors.New("volume v is used by 2 containers") }}
	if _, err := r2.Render(0); err == nil || !strings.Contains(err.Error(), "volume v is used by 2 containers") || !strings.Contains(err.Error(), "config 'ctx'") {
		t.Errorf("identity failure: %v", err)
	}
}

// The bad inputs of the issue: each is refused with a message naming the
// template and what is wrong.
func TestRefusals(t *testing.T) {
	max := func(k Kind) int {
		if k == Secret {
			return 20
		}
		return 40
	}
	for _, c := range []struct {
		name  string
		files []File
		want  string
	}{
		{"missing secret", []File{file(Config, "dsn", "dsn", `{{ secret "db_password" }}`, true)},
			`template config 'dsn' (target dsn) reads secret "db_password", but the container declares no secret with that target`},
		{"missing config", []File{file(Secret, "s", "s", `{{ config "nope" }}`, true)},
			`template secret 's' (target s) reads config "nope", but the container declares no config with that target`},
		{"secret asked as config", []File{file(Config, "c", "c", `{{ config "pw" }}`, true), file(Secret, "pw", "pw", "x", false)},
			`reads config "pw", but the container declares no config`},
		{"unknown function", []File{file(Config, "c", "c", `{{ vault "x" }}`, true)},
			`template config 'c' (target c) does not parse: template: c:1: function "vault" not defined (the functions are secret, config, env, join and text/template's own)`},
		{"loop", []File{
			file(Config, "a", "a", `{{ config "b" }}`, true),
			file(Config, "b", "b", `{{ secret "c" }}`, true),
			file(Secret, "c", "c", `{{ config "a" }}`, true),
		}, "templates read each other in a loop: config 'a' reads config 'b' reads secret 'c' reads config 'a': break the loop"},
		{"reads itself", []File{file(Config, "a", "a", `x{{ config "a" }}`, true)},
			"templates read each other in a loop: config 'a' reads config 'a'"},
		{"over the cap", []File{file(Secret, "big", "big", `{{ secret "s" }}{{ secret "s" }}{{ secret "s" }}`, true), file(Secret, "s", "s", "12345678", false)},
			"template secret 'big' (target big) renders to more than a secret may hold (it must be under 20 bytes): make it smaller"},
		{"nested over the cap", []File{file(Config, "outer", "outer", `{{ secret "inner" }}`, true), file(Secret, "inner", "inner", `{{ "123456789012345678901234567890" }}`, true)},
			"template secret 'inner' (target inner) renders to more than a secret may hold (it must be under 20 bytes)"},
		{"range over a number", []File{file(Config, "r", "r", `{{ range 1000000000000 }}{{ end }}`, true)},
			"range over a number is not allowed"},
		{"range over a number in a variable", []File{file(Config, "r", "r", `{{ $n := 99999999 }}{{ range $n }}{{ end }}`, true)},
			"range over a number is not allowed"},
		{"ranges nested too deep", []File{file(Config, "r", "r", `{{ range .Service.Labels }}{{ range $.Service.Labels }}{{ range $.Service.Labels }}{{ end }}{{ end }}{{ end }}`, true)},
			"ranges nested more than 2 deep are not allowed"},
		{"missing label (config)", []File{file(Config, "l", "l", `{{ .Service.Labels.nope }}`, true)},
			`template config 'l' (target l) failed to render: template: l:1:11: executing "l" at <.Service.Labels.nope>: map has no entry for key "nope"`},
		{"unknown field", []File{file(Config, "f", "f", `{{ .Task.Nope }}`, true)},
			"can't evaluate field Nope"},
		{"load fails", []File{file(Config, "c", "c", `{{ secret "s" }}`, true), {Kind: Secret, Name: "s", Target: "s", Load: func() ([]byte, bool, error) {
			return nil, false, errors.New("secret 's' not found")
		}}}, "template config 'c' (target c) reads secret 's' (target s): secret 's' not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &Renderer{Files: c.files, Identity: identity(), MaxSize: max}
			_, err := r.Render(0)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant %q", err, c.want)
			}
		})
	}
}

// text/template's own messages may quote values; a template that handled a
// secret keeps only the position.
func TestSecretNeverInErrors(t *testing.T) {
	const canary = "canary-4f7d1c"
	for text, want := range map[string]string{
		`{{ secret "pw" }}{{ .Task.Nope }}`:              "failed at line 1, column 25 (the reason is not shown",
		`{{ secret (secret "pw") }}`:                     "reads a secret by a target the container does not declare (the target is not shown",
		`{{ $x := secret "pw" }}{{ config $x }}`:         "reads a config by a target the container does not declare (the target is not shown",
		`{{ secret "pw" | printf "%s.x" | config }}`:     "(the target is not shown",
		`{{ (secret "pw").X }}`:                          "(the reason is not shown: the template reads a secret)",
		`{{ index .Service.Labels.team (secret "pw") }}`: "(the reason is not shown: the template reads a secret)",
	} {
		r := &Renderer{Files: []File{file(Config, "c", "c", text, true), file(Secret, "pw", "pw", canary, false)}, Identity: identity()}
		_, err := r.Render(0)
		if err == nil {
			t.Fatalf("%s rendered", text)
		}
		if strings.Contains(err.Error(), canary) {
			t.Fatalf("%s: the error holds the secret: %v", text, err)
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "config 'c'") {
			t.Errorf("%s: %v, want %q", text, err, want)
		}
	}
	// A secret template's own static text is a secret too.
	r := &Renderer{Files: []File{file(Secret, "s", "s", canary+`{{ .Task.Nope }}`, true)}, Identity: identity()}
	if _, err := r.Render(0); err == nil || strings.Contains(err.Error(), canary) {
		t.Fatalf("secret template's error: %v", err)
	}
}

// A file read by two templates is loaded and rendered once, and Close
// wipes what was loaded.
func TestLoadOnceAndWipe(t *testing.T) {
	loads := 0
	data := []byte("s3cret")
	r := &Renderer{Files: []File{
		file(Config, "a", "a", `{{ secret "s" }}{{ config "b" }}`, true),
		file(Config, "b", "b", `{{ secret "s" }}`, true),
		{Kind: Secret, Name: "s", Target: "s", Load: func() ([]byte, bool, error) { loads++; return data, false, nil }},
	}}
	res := render(t, r, 0)
	if string(res.Data) != "s3crets3cret" || loads != 1 || !reflect.DeepEqual(res.Reads, []int{1, 2}) {
		t.Fatalf("got %q, %d loads, reads %v", res.Data, loads, res.Reads)
	}
	r.Close()
	if string(data) != "\x00\x00\x00\x00\x00\x00" {
		t.Errorf("Close left the loaded secret: %q", data)
	}
	if string(res.Data) != "s3crets3cret" {
		t.Errorf("Close wiped a result handed out: %q", res.Data)
	}
}

func TestCheck(t *testing.T) {
	for text, ok := range map[string]bool{
		`dsn=app:{{ secret "db_password" }}@db`:                true,
		`{{ env "HOME" }} {{ config "x" }} {{ join "," "a" }}`: true,
		`{{ .Task.Name }}-{{ .Task.Slot }}`:                    true,
		`{{ printf "%s" (secret "a") | len }}`:                 true,
		`{{ lookup "x" }}`:                                     false,
		`{{ secret "a" `:                                       false,
		`{{ range 10 }}x{{ end }}`:                             false,
		`{{ range .Service.Labels }}{{ end }}`:                 true,
	} {
		if err := Check([]byte(text)); (err == nil) != ok {
			t.Errorf("Check(%q) = %v, want ok %v", text, err, ok)
		}
	}
}
