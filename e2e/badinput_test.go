package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// biSleeper keeps a container running and lets docker stop end it at once.
const biSleeper = "trap 'exit 0' TERM; sleep 600 & wait"

// apiClient is a raw HTTP client on a daemon's unix socket: the bad-input
// cases need requests the Go client and the CLIs never send.
func apiClient(sock string) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			},
			DisableKeepAlives: true,
		},
	}
}

// apiRaw sends one request and returns the status and the error message
// of the Engine-shaped error body (the raw body when it is not one).
func apiRaw(t *testing.T, hc *http.Client, method, path, ctype string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://secretd"+path, body)
	if err != nil {
		t.Fatalf("request %s %s: %v", method, path, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Message *string `json:"message"`
	}
	if json.Unmarshal(b, &e) == nil && e.Message != nil {
		return resp.StatusCode, *e.Message
	}
	return resp.StatusCode, string(b)
}

// storeDump is everything a refused request must leave as it was.
func storeDump(t *testing.T, d *daemon) map[string]string {
	t.Helper()
	out := map[string]string{}
	db, err := os.ReadFile(filepath.Join(d.dataRoot, "secrets.db"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(db)
	out["secrets.db sha256"] = hex.EncodeToString(sum[:])
	ids := strings.Fields(d.mustCLI("", "secret", "ls", "-q"))
	slices.Sort(ids)
	out["secret ids"] = strings.Join(ids, " ")
	if len(ids) > 0 {
		out["secret inspect"] = d.mustCLI("", append([]string{"secret", "inspect"}, ids...)...)
	}
	// The volume registry, a record per volume.
	recs, err := filepath.Glob(filepath.Join(d.dataRoot, "volumes", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(recs)
	var vols []string
	for _, f := range recs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		vols = append(vols, filepath.Base(f)+": "+string(b))
	}
	out["volumes"] = strings.Join(vols, "\n")
	if len(vols) == 0 {
		out["volumes"] = "<absent>"
	}
	mounts := d.mounts()
	slices.Sort(mounts)
	out["mounts"] = strings.Join(mounts, "\n")
	out["ps"] = d.mustCLI("", "ps", "--format", "{{.Name}} {{.Secret}} {{.Version}} {{.Target}} {{.Mount}}")
	return out
}

// badCase is one refused input: what it got (an HTTP status or an exit
// code, and the message) against what it must get.
type badCase struct {
	name string
	// code is the HTTP status or exit code wanted; 0 means any failure.
	code int
	want string
	run  func(t *testing.T) (int, string)
}

// TestBadInput throws bad input at every interface of one daemon that
// holds secrets and serves a running container: the CLI, the raw HTTP API,
// labels, volume options, declarations and container updates. Each is
// refused with a message saying what is wrong, and afterwards the store,
// the volume and container records, the mounts and the task table are
// byte for byte what they were.
func TestBadInput(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	hc := apiClient(d.sock)

	d.mustCLI("alpha-value", "secret", "create", "--label", "env=prod", "alpha", "-")
	d.mustCLI("beta-value", "secret", "create", "beta", "-")
	gammaID := d.mustCLI("gamma-v1", "secret", "create", "gamma", "-")
	d.mustCLI("gamma-v2", "secret", "update", "gamma", "-")
	alphaID := d.mustCLI("", "secret", "inspect", "--format", "{{.ID}}", "alpha")
	gammaIndex := d.mustCLI("", "secret", "inspect", "--format", "{{.Version.Index}}", "gamma")

	app := d.driver + "-bi-app"
	mustDocker(t, d.runArgs("alpha", []string{"-d", "--name", app}, biSleeper)...)
	d.mustCLI("", "container", "update", app, "--secret-add", "source=beta,target=b/beta,mode=0400")
	vol := d.driver + "-bi-vol"
	mustDocker(t, "volume", "create", "-d", d.driver, "-o", "secrets=alpha;source=gamma@1,target=g", vol)
	if got := mustDocker(t, "exec", app, "cat", "/run/secrets/alpha", "/run/secrets/b/beta"); got != "alpha-valuebeta-value" {
		t.Fatalf("the container reads %q before the bad input", got)
	}

	before := storeDump(t, d)
	if before["volumes"] == "<absent>" {
		t.Fatal("no volume record exists after creating a volume and updating a container's: the dump would miss changes to them")
	}

	spec := func(name string) string { return `{"Name":"` + name + `","Data":"eA=="}` }
	api := func(name, method, path, ctype, body string, code int, want string) badCase {
		return badCase{name: "api " + name, code: code, want: want, run: func(t *testing.T) (int, string) {
			var r io.Reader
			if body != "" {
				r = strings.NewReader(body)
			}
			return apiRaw(t, hc, method, path, ctype, r)
		}}
	}
	const js = "application/json"
	const create = "/v1.41/secrets/create"
	bigBody := `{"Name":"big","Data":"` + strings.Repeat("A", 1<<20) + `"}`
	manyLabels := map[string]string{}
	for i := range 65 {
		manyLabels[fmt.Sprintf("k%d", i)] = "v"
	}
	manyLabelsJSON, _ := json.Marshal(map[string]any{"Name": "x", "Data": "eA==", "Labels": manyLabels})

	cli := func(name, stdin string, code int, want string, args ...string) badCase {
		return badCase{name: "cli " + name, code: code, want: want, run: func(t *testing.T) (int, string) {
			r := d.cli(stdin, args...)
			return r.code, r.stderr
		}}
	}
	bigFile := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(bigFile, []byte(strings.Repeat("z", 2<<20)), 0o600); err != nil {
		t.Fatal(err)
	}

	// Volumes and containers that a refused command must not leave behind.
	volCreate := func(name, opt, want string) badCase {
		return badCase{name: "volume create " + name, want: want, run: func(t *testing.T) (int, string) {
			v := d.driver + "-bi-bad"
			r := docker(t, "volume", "create", "-d", d.driver, "-o", opt, v)
			if r.code == 0 {
				docker(t, "volume", "rm", v)
			}
			if ls := mustDocker(t, "volume", "ls", "-q", "--filter", "driver="+d.driver); slices.Contains(strings.Fields(ls), v) {
				t.Errorf("a refused volume create left volume %s", v)
			}
			return r.code, r.stderr
		}}
	}
	n := 0
	run := func(name, decl string, extra []string, want string) badCase {
		return badCase{name: "docker run " + name, code: 125, want: want, run: func(t *testing.T) (int, string) {
			n++
			ctr := fmt.Sprintf("%s-bi-bad%d", d.driver, n)
			args := append([]string{"--pull", "never", "--name", ctr}, extra...)
			r := docker(t, d.runArgs(decl, args, "cat /run/secrets/*; echo RAN")...)
			if strings.Contains(r.stdout, "RAN") {
				t.Errorf("the container ran")
			}
			// docker run created the container before its start failed:
			// removing it and its anonymous volume is the user's cleanup,
			// after which the records must be as before.
			docker(t, "rm", "-f", "-v", ctr)
			return r.code, r.stderr
		}}
	}
	ctrUpdate := func(name string, want string, args ...string) badCase {
		return cli("container update "+name, "", 0, want, append([]string{"container", "update"}, args...)...)
	}

	cases := []badCase{
		// The HTTP API: JSON.
		api("malformed JSON", "POST", create, js, `{"Name":"x","Data":`, 400, "invalid JSON: unexpected EOF"),
		api("name of the wrong type", "POST", create, js, `{"Name":5,"Data":"eA=="}`, 400, "invalid JSON: cannot unmarshal number into Go struct field"),
		api("labels of the wrong type", "POST", create, js, `{"Name":"x","Data":"eA==","Labels":["a=b"]}`, 400, "cannot unmarshal array"),
		api("label value of the wrong type", "POST", create, js, `{"Name":"x","Data":"eA==","Labels":{"a":{"b":1}}}`, 400, "cannot unmarshal object"),
		api("data not base64", "POST", create, js, `{"Name":"x","Data":"!!!"}`, 400, "invalid JSON: illegal base64 data"),
		api("unknown field", "POST", create, js, `{"Name":"x","Data":"eA==","Bogus":1}`, 400, `invalid JSON: unknown field "Bogus"`),
		api("trailing data", "POST", create, js, spec("x")+` {}`, 400, "invalid JSON: unexpected data after the request object"),
		api("trailing garbage", "POST", create, js, spec("x")+`]`, 400, "invalid JSON: unexpected data after the request object"),
		api("empty body", "POST", create, js, "", 400, "invalid JSON: request body is empty"),
		api("body over 1 MiB", "POST", create, js, bigBody, 413, "request body is larger than 1048576 bytes"),
		api("update body over 1 MiB", "POST", "/secretd/secrets/gamma/update", js, `{"Data":"`+strings.Repeat("A", 1<<20)+`"}`, 413, "request body is larger than 1048576 bytes"),
		api("form Content-Type", "POST", create, "application/x-www-form-urlencoded", "Name=x&Data=eA==", 400, `unsupported Content-Type "application/x-www-form-urlencoded": use application/json`),
		api("text Content-Type", "POST", create, "text/plain", spec("x"), 400, `unsupported Content-Type "text/plain"`),
		api("null body", "POST", create, js, "null", 400, "name must be provided"),
		api("no data", "POST", create, js, `{"Name":"x"}`, 400, "secret data must be larger than 0 and less than 512000 bytes"),
		api("name with @", "POST", create, js, spec("alpha@2"), 400, "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed"),
		api("name with a path", "POST", create, js, spec("../etc/passwd"), 400, "invalid name"),
		api("duplicate name", "POST", create, js, spec("alpha"), 409, "secret alpha already exists"),
		// No plugin "vault" here: that is the cause named, not the data.
		api("missing secret driver with data", "POST", create, js, `{"Name":"x","Data":"eA==","Driver":{"Name":"vault"}}`, 400, `unknown secret driver: no plugin "vault"`),
		api("template that does not parse", "POST", create, js, `{"Name":"x","Data":"e3sgdmF1bHQgfX0=","Templating":{"Name":"golang"}}`, 400, `the secret's data is not a valid template: template: template:1: function "vault" not defined`),
		api("unknown template driver", "POST", create, js, `{"Name":"x","Data":"eA==","Templating":{"Name":"jinja"}}`, 400, `unknown template driver "jinja": the only one is golang`),
		api("empty config", "POST", "/v1.41/configs/create", js, `{"Name":"x","Data":""}`, 400, "config data must be larger than 0 and less than 1024000 bytes"),
		// Labels through the API.
		api("empty label key", "POST", create, js, `{"Name":"x","Data":"eA==","Labels":{"":"v"}}`, 400, "label key must not be empty"),
		api("label key with a space", "POST", create, js, `{"Name":"x","Data":"eA==","Labels":{"a b":"v"}}`, 400, `label key "a b" must not contain '=', spaces or control characters`),
		api("label value with a newline", "POST", create, js, `{"Name":"x","Data":"eA==","Labels":{"a":"x\ny"}}`, 400, `value of label "a" must not contain control characters`),
		api("label key too long", "POST", create, js, `{"Name":"x","Data":"eA==","Labels":{"`+strings.Repeat("k", 300)+`":"v"}}`, 400, "is longer than 256 bytes"),
		api("too many labels", "POST", create, js, string(manyLabelsJSON), 400, "too many labels (65): at most 64 allowed"),
		// Endpoints and methods.
		api("unknown endpoint", "GET", "/v1.41/nothing", "", "", 404, "page not found"),
		api("an Engine endpoint", "GET", "/v1.41/containers/json", "", "", 421, "this is secretd, which serves secrets and configs only (docker secret ..., docker config ...), not containers"),
		api("unknown secretd endpoint", "POST", "/secretd/lock", js, "{}", 404, "page not found"),
		api("wrong method on create", "PUT", create, js, spec("x"), 404, "page not found"),
		api("wrong method on the list", "DELETE", "/secrets", "", "", 404, "page not found"),
		api("key rotation by GET", "GET", "/secretd/key/rotate", "", "", 404, "page not found"),
		api("unclean path", "GET", "/secrets/../secretd/unlock-key", "", "", 404, "page not found"),
		api("inspect of a missing secret", "GET", "/secrets/nope", "", "", 404, "secret 'nope' not found"),
		// Filters.
		api("filters not JSON", "GET", "/secrets?filters="+url.QueryEscape(`{"name":`), "", "", 400, "invalid filters"),
		api("unknown filter key", "GET", "/secrets?filters="+url.QueryEscape(`{"color":{"red":true}}`), "", "", 400, "invalid filter 'color'"),
		// Updates.
		api("update ?version= not a number", "POST", "/secretd/secrets/gamma/update?version=abc", js, `{"Data":"eA=="}`, 400, `invalid version "abc": it must be a number`),
		api("update ?version= negative", "POST", "/secretd/secrets/gamma/update?version=-1", js, `{"Data":"eA=="}`, 400, `invalid version "-1"`),
		api("update at a stale index", "POST", "/secretd/secrets/gamma/update?version=1", js, `{"Data":"eA=="}`, 409, "update out of sequence: secret gamma is at index "+gammaIndex+", not 1"),
		api("update with keep -1", "POST", "/secretd/secrets/gamma/update", js, `{"Data":"eA==","Keep":-1}`, 400, "keep must not be negative"),
		api("update with keep as a string", "POST", "/secretd/secrets/gamma/update", js, `{"Data":"eA==","Keep":"3"}`, 400, "cannot unmarshal string into Go struct field"),
		api("update with a fractional keep", "POST", "/secretd/secrets/gamma/update", js, `{"Data":"eA==","Keep":1.5}`, 400, "cannot unmarshal number 1.5"),
		api("update without data", "POST", "/secretd/secrets/gamma/update", js, `{}`, 400, "secret data must be larger than 0"),
		api("update with a name field", "POST", "/secretd/secrets/gamma/update", js, `{"Name":"x","Data":"eA=="}`, 400, `unknown field "Name"`),
		api("update of a missing secret", "POST", "/secretd/secrets/nope/update", js, `{"Data":"eA=="}`, 404, "secret 'nope' not found"),
		// The Docker path takes a full SecretSpec and changes only labels, as Swarm.
		api("docker update with data", "POST", "/secrets/gamma/update", js, `{"Name":"gamma","Data":"eA=="}`, 400, "only updates to Labels are allowed"),
		api("docker update renaming", "POST", "/secrets/gamma/update", js, `{"Name":"delta"}`, 400, "only updates to Labels are allowed"),
		api("docker update with secretd's rotation body", "POST", "/secrets/gamma/update", js, `{"Data":"eA==","Keep":2}`, 400, `unknown field "Keep"`),
		api("docker update of a missing secret", "POST", "/secrets/nope/update", js, `{"Name":"nope"}`, 404, "secret 'nope' not found"),
		// Versions and removal.
		api("remove NAME@0", "DELETE", "/secrets/gamma@0", "", "", 400, `invalid version "0" in "gamma@0": use NAME@N with N a positive number`),
		api("remove NAME@-1", "DELETE", "/secrets/gamma@-1", "", "", 400, `invalid version "-1"`),
		api("remove NAME@x", "DELETE", "/secrets/gamma@x", "", "", 400, `invalid version "x"`),
		api("remove NAME@ with nothing after", "DELETE", "/secrets/gamma@", "", "", 400, `invalid version ""`),
		api("remove the current version", "DELETE", "/secrets/gamma@2", "", "", 400, "version 2 is the current version of secret 'gamma'"),
		api("remove a version not kept", "DELETE", "/secrets/gamma@9", "", "", 404, "secret 'gamma' has no version 9 (kept: 1, 2)"),
		api("remove a secret in use", "DELETE", "/secrets/"+alphaID, "", "", 409, "secret 'alpha' is in use by the following container: "+app),
		// Keys.
		api("unlock a daemon without autolock", "POST", "/secretd/unlock", js, `{"UnlockKey":"SECDKEY-1-`+strings.Repeat("A", 43)+`"}`, 400, "secretd is not locked: it was started without --autolock"),
		api("unlock with a key of the wrong type", "POST", "/secretd/unlock", js, `{"UnlockKey":1}`, 400, "cannot unmarshal number"),
		api("unlock key of a daemon without autolock", "GET", "/secretd/unlock-key", "", "", 400, "secretd was started without --autolock: it has no unlock key"),
		api("unlock key rotation without autolock", "POST", "/secretd/unlock-key/rotate", "", "", 400, "started without --autolock"),
		// Containers through the API.
		api("container update with nothing", "POST", "/secretd/containers/"+app+"/update", js, `{}`, 400, "nothing to change: give --secret-add, --secret-rm, --config-add or --config-rm"),
		api("container update with a string for a list", "POST", "/secretd/containers/"+app+"/update", js, `{"SecretAdd":"gamma"}`, 400, "cannot unmarshal string into Go struct field"),
		api("container update of a missing container", "POST", "/secretd/containers/nosuch-bi/update", js, `{"SecretAdd":["gamma"]}`, 404, "no such container: nosuch-bi"),

		// The secretd CLI.
		cli("create without a name", "", 1, "accepts between 1 and 2 arg(s), received 0", "secret", "create"),
		cli("create with three arguments", "x", 1, "accepts between 1 and 2 arg(s), received 3", "secret", "create", "a", "b", "-"),
		cli("create with an unknown flag", "x", 125, "unknown flag: --data", "secret", "create", "--data", "x", "y"),
		cli("create --generate not a number", "", 125, `invalid argument "many" for "--generate" flag`, "secret", "create", "--generate", "many", "x"),
		cli("create --generate too large", "", 1, "--generate 400000: the size must be at least 1 and at most 383997 bytes", "secret", "create", "--generate", "400000", "x"),
		cli("create --generate 0", "", 1, "--generate 0: the size must be at least 1 and at most 383997 bytes", "secret", "create", "--generate", "0", "x"),
		cli("create --from-env and a file", "x", 1, "give the data one way only", "secret", "create", "--from-env", "HOME", "x", "-"),
		cli("create with a non-ASCII name", "x", 1, "Error response from daemon: invalid name", "secret", "create", "ünïcode", "-"),
		cli("create with a name ending in a dash", "x", 1, "Error response from daemon: invalid name", "secret", "create", "--", "name-", "-"),
		cli("create from a file over the size limit", "", 1, "Error response from daemon: secret data must be larger than 0 and less than 512000 bytes", "secret", "create", "huge", bigFile),
		cli("create from a directory", "", 1, "error reading content from", "secret", "create", "dir", t.TempDir()),
		cli("create with a label key holding a space", "x", 1, `label key "a b" must not contain '=', spaces or control characters`, "secret", "create", "--label", "a b=v", "x", "-"),
		cli("create with a label value holding a tab", "x", 1, `value of label "k" must not contain control characters`, "secret", "create", "--label", "k=a\tb", "x", "-"),
		cli("create with a blank label key", "x", 1, `invalid label " =v": the key must not be empty`, "secret", "create", "--label", " =v", "x", "-"),
		cli("create of an existing name", "x", 1, "Error response from daemon: secret beta already exists", "secret", "create", "beta", "-"),
		cli("update without data", "", 1, "no data given", "secret", "update", "gamma"),
		cli("update with empty stdin", "", 1, "secret data must be larger than 0", "secret", "update", "gamma", "-"),
		cli("update --keep -1", "x", 1, "keep must not be negative", "secret", "update", "--keep", "-1", "gamma", "-"),
		cli("update --keep not a number", "x", 125, `invalid argument "all" for "--keep" flag`, "secret", "update", "--keep", "all", "gamma", "-"),
		cli("update of a missing secret", "x", 1, "Error response from daemon: secret 'nope' not found", "secret", "update", "nope", "-"),
		cli("rm NAME@0", "", 1, `invalid version "0" in "gamma@0"`, "secret", "rm", "gamma@0"),
		cli("rm of the current version", "", 1, "version 2 is the current version of secret 'gamma'", "secret", "rm", "gamma@2"),
		cli("inspect without a name", "", 1, "requires at least 1 arg", "secret", "inspect"),
		cli("ls with an unknown filter", "", 1, "invalid filter 'driver'", "secret", "ls", "--filter", "driver=x"),
		cli("unlock without autolock", "SECDKEY-1-"+strings.Repeat("A", 43)+"\n", 1, "secretd is not locked", "unlock"),
		cli("unlock-key without autolock", "", 1, "started without --autolock", "unlock-key"),
		cli("bad host", "", 1, `invalid host "bogus://x"`, "-H", "bogus://x", "secret", "ls"),

		// secretd container update.
		ctrUpdate("with nothing to change", "nothing to change: give --secret-add, --secret-rm, --config-add or --config-rm", app),
		ctrUpdate("without a container", "accepts 1 arg(s), received 0", "--secret-add", "gamma"),
		ctrUpdate("of a missing container", "no such container: nosuch-bi", "nosuch-bi", "--secret-add", "gamma"),
		ctrUpdate("adding a missing secret", "secret 'nope' not found", app, "--secret-add", "nope"),
		ctrUpdate("adding a version not kept", "secret 'gamma' has no version 9", app, "--secret-add", "gamma@9"),
		ctrUpdate("adding a secret by ID", "secret '"+gammaID+"' not found", app, "--secret-add", gammaID),
		ctrUpdate("adding a secret by ID prefix", "secret '"+gammaID[:12]+"' not found", app, "--secret-add", gammaID[:12]),
		ctrUpdate("adding with a bad mode", `mode "999" is not an octal number`, app, "--secret-add", "source=gamma,mode=999"),
		ctrUpdate("adding onto a taken target", `duplicate target "alpha"`, app, "--secret-add", "source=gamma,target=alpha"),
		ctrUpdate("adding a file under a file", `is inside target "alpha", which is a file`, app, "--secret-add", "source=gamma,target=alpha/x"),
		ctrUpdate("adding an escaping target", `target "../g" must not contain ".." components`, app, "--secret-add", "source=gamma,target=../g"),
		ctrUpdate("removing a secret not granted", "secret 'gamma' is not granted to container "+app, app, "--secret-rm", "gamma"),

		// Volume options.
		volCreate("with an unknown option", "Secrets=alpha", `unknown option "Secrets"`),
		volCreate("with an empty declaration", "secrets=", "no secrets declared"),
		volCreate("with a negative uid", "secrets=source=alpha,uid=-1", `entry 1 "source=alpha,uid=-1": uid "-1" is out of range (0 to 2147483647)`),
		volCreate("with version 0", "secrets=alpha@0", `version "0" is not a positive integer`),
		volCreate("with an absolute target", "secrets=alpha;source=beta,target=/etc/passwd", `entry 2 "source=beta,target=/etc/passwd": target "/etc/passwd" must be a relative path`),
		volCreate("with too many entries", "secrets="+strings.Repeat("alpha;", 300)+"alpha", "too many entries (301): at most 256 allowed"),
		volCreate("with a field that is not key=value", "secrets=source=alpha,ro", `option "ro" is not a key=value pair`),

		// Declarations and labels at docker run.
		run("with a gid out of range", "source=alpha,gid=4294967296", nil, `gid "4294967296" is out of range`),
		run("with a pinned version not kept", "alpha@99", nil, "secret 'alpha' has no version 99"),
		run("with a target reserved for updates", "source=alpha,target=..data", nil, `must not start with ".." (reserved for atomic updates)`),
		run("with an empty path component", "source=alpha,target=a//b", nil, `target "a//b" has an empty path component`),
		run("with source given twice", "source=alpha,source=beta", nil, `option "source" given twice`),
		run("with a secret named by ID", alphaID, nil, "secret '"+alphaID+"' not found"),
		run("with an unknown signal", "alpha", []string{"--label", "secretd.on-update=signal:SIGBOGUS"}, `unknown signal "SIGBOGUS"`),
		run("with a volume option", "alpha", nil, `unknown option "bogus"`),
	}
	// The last docker run case puts an option on the anonymous volume.
	cases[len(cases)-1].run = func(t *testing.T) (int, string) {
		ctr := d.driver + "-bi-volopt"
		r := docker(t, "run", "--pull", "never", "--name", ctr, "--network", "none", "--label", d.label(),
			"--label", "secretd.secrets=alpha",
			"--mount", "type=volume,volume-driver="+d.driver+",dst=/run/secrets,volume-opt=bogus=1",
			image, "true")
		docker(t, "rm", "-f", "-v", ctr)
		return r.code, r.stderr
	}

	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		got, msg := c.run(t)
		switch {
		case c.code == 0 && got == 0, c.code != 0 && got != c.code:
			t.Errorf("%s: got %d, want %d (0 = any failure); message: %s", c.name, got, c.code, msg)
		case !strings.Contains(msg, c.want):
			t.Errorf("%s: message %q does not say %q", c.name, strings.TrimSpace(msg), c.want)
		}
		if c.code >= 500 || strings.Contains(msg, "internal error") || strings.Contains(msg, "panic") {
			t.Errorf("%s: an internal error for bad input: %s", c.name, msg)
		}
	}
	t.Logf("%d bad-input cases", len(cases))

	after := storeDump(t, d)
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if before[k] != after[k] {
			t.Errorf("%s changed under bad input:\nbefore: %s\nafter:  %s", k, before[k], after[k])
		}
	}
	if got := mustDocker(t, "exec", app, "cat", "/run/secrets/alpha", "/run/secrets/b/beta"); got != "alpha-valuebeta-value" {
		t.Errorf("the container reads %q after the bad input", got)
	}
	if strings.Contains(d.log(), "panic") {
		t.Errorf("the daemon log mentions a panic")
	}
}
