package compose

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// load writes yml as the project's compose file and loads it.
func load(t *testing.T, yml string, env ...string) (*Translation, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "site.key"), []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	p, err := Load(context.Background(), Options{WorkingDir: dir, Name: "proj"})
	if err != nil {
		return nil, err
	}
	return Translate(p, "secretd")
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs:\n%s\nwant\n%s", name, got, want)
	}
}

const stackFile = `
secrets:
  db_password:
    external: true
  renamed:
    external: true
    name: prod_api_key
  site_key:
    file: ./site.key
  token:
    environment: TOKEN
    labels: {team: web}
services:
  web:
    image: busybox
    environment:
      PRICE: "$$5"
    depends_on: [db]
    secrets:
      - token
      - source: renamed
        target: api.key
      - source: site_key
        target: /run/secrets/tls/site.key
        uid: "101"
        gid: "102"
        mode: 0400
  db:
    image: busybox
    secrets: [db_password]
  nginx:
    image: busybox
    secrets:
      - site_key
      - source: site_key
        target: /etc/nginx/conf.d/site.conf
        mode: 0440
  plain:
    image: busybox
`

func TestTranslate(t *testing.T) {
	tr, err := load(t, stackFile, "TOKEN=t")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, s := range tr.Secrets {
		k := "external"
		switch {
		case s.File != "":
			k = "file " + filepath.Base(s.File)
		case s.Env != "":
			k = "env " + s.Env
		}
		kinds = append(kinds, s.Key+"="+s.Name+" ("+k+")")
	}
	want := "db_password=db_password (external), renamed=prod_api_key (external), site_key=proj_site_key (file site.key), token=proj_token (env TOKEN)"
	if got := strings.Join(kinds, ", "); got != want {
		t.Errorf("secrets:\n%s\nwant\n%s", got, want)
	}
	for _, v1 := range []bool{false, true} {
		b, err := tr.YAML(v1)
		if err != nil {
			t.Fatal(err)
		}
		name := "stack-v2.golden"
		if v1 {
			name = "stack-v1.golden"
		}
		golden(t, name, b)
	}
}

// TestTranslateRefuses: what secretd cannot serve is refused before
// anything starts, naming the service and secret, with every error at once.
func TestTranslateRefuses(t *testing.T) {
	svc := func(entry string, top string) string {
		return "services:\n  web:\n    image: busybox\n    secrets:\n" + entry + "secrets:\n" + top
	}
	ext := "  s:\n    external: true\n"
	for _, tc := range []struct {
		name, yml, want string
	}{
		{"escaping target", svc("      - source: s\n        target: ../../etc/shadow\n", ext),
			`service "web", secret "s": "source=s,target=../../etc/shadow,uid=0,gid=0,mode=0444": target "../../etc/shadow" must not contain ".." components`},
		{"escaping absolute target", svc("      - source: s\n        target: /run/secrets/../../etc/shadow\n", ext),
			`service "web", secret "s": "source=s,target=../../etc/shadow,uid=0,gid=0,mode=0444": target "../../etc/shadow" must not contain ".." components`},
		{"escaping absolute target elsewhere", svc("      - source: s\n        target: /etc/nginx/../shadow\n", ext),
			`service "web", secret "s": "source=s,target=/etc/nginx/../shadow,uid=0,gid=0,mode=0444": target "/etc/nginx/../shadow": use a clean absolute path`},
		{"absolute target on a mount", "services:\n  web:\n    image: busybox\n    volumes: [\"mine:/etc/app/key\"]\n    secrets:\n      - source: s\n        target: /etc/app/key\nvolumes:\n  mine: {}\nsecrets:\n" + ext,
			`service "web": target /etc/app/key of secret s is mounted already (volume "mine")`},
		{"mode beyond permissions", svc("      - source: s\n        mode: 04755\n", ext),
			`service "web", secret "s": mode 04755 is not a permission mode: use 0000 to 0777, such as 0400`},
		{"uid not a number", svc("      - source: s\n        uid: root\n", ext),
			`service "web", secret "s": uid "root" is not a number from 0 to 2147483647`},
		{"own mount at /run/secrets", "services:\n  web:\n    image: busybox\n    volumes: [mine:/run/secrets]\n    secrets: [s]\nvolumes:\n  mine: {}\nsecrets:\n" + ext,
			`service "web" mounts /run/secrets itself (volume "mine") and has secrets`},
		// The library's own messages.
		{"undefined secret", svc("      - nosuch\n", ext), `service "web" refers to undefined secret nosuch`},
		{"driver with a file", svc("      - s\n", "  s:\n    driver: vault\n    file: ./site.key\n"), `secret "s": driver: gives the secret's value, so it goes without file:, environment: and external:`},
		{"driver_opts without driver", svc("      - s\n", "  s:\n    file: ./site.key\n    driver_opts: {a: b}\n"), `secret "s": driver_opts: needs driver:`},
		{"template driver", svc("      - s\n", "  s:\n    file: ./site.key\n    template_driver: jinja\n"), `secret "s": template_driver "jinja" is not supported: secretd's is golang`},
		{"external template", svc("      - s\n", "  s:\n    external: true\n    template_driver: golang\n"), `secret "s": template_driver: is set when a secret is created`},
		{"config with a driver", "services:\n  web:\n    image: busybox\n    configs: [c]\nconfigs:\n  c:\n    file: ./site.key\n    driver: vault\n", `configs.c additional properties 'driver' not allowed`},
		{"config escaping", "services:\n  web:\n    image: busybox\n    configs:\n      - source: c\n        target: /etc/../shadow\nconfigs:\n  c:\n    file: ./site.key\n", `service "web", config "c": "source=proj_c,target=/etc/../shadow,uid=0,gid=0,mode=0444": target "/etc/../shadow": use a clean absolute path`},
		{"config and secret on one target", "services:\n  web:\n    image: busybox\n    secrets: [s]\n    configs:\n      - source: c\n        target: /run/secrets/s\nsecrets:\n" + ext + "configs:\n  c:\n    file: ./site.key\n", `service "web": duplicate target "s": secret "s" and config "proj_c"`},
		{"undefined config", "services:\n  web:\n    image: busybox\n    configs: [nosuch]\n", `service "web" refers to undefined config nosuch`},
		// A project with driver secrets still gets the library's checks.
		{"driver secret, service without image", "services:\n  web:\n    secrets: [s]\nsecrets:\n  s:\n    driver: vault\n", `service "web" has neither an image nor a build context specified`},
		{"driver secret for a build", "services:\n  web:\n    build:\n      context: .\n      secrets: [s]\nsecrets:\n  s:\n    driver: vault\n", `secret "s" must declare either`},
		{"no source at all", svc("      - s\n", "  s:\n    labels: {a: b}\n"), `one of file|environment must be set`},
		{"bad yaml", "services:\n  web:\n    image: [\n", "yaml"},
		{"mistyped on-update", "services:\n  web:\n    image: busybox\n    labels: {secretd.on-update: restart-always}\n    secrets: [s]\nsecrets:\n" + ext,
			`service "web": label secretd.on-update="restart-always": use none, signal:SIGNAME`},
		{"unknown on-update signal", "services:\n  web:\n    image: busybox\n    labels: [\"secretd.on-update=signal:SIGHUPP\"]\n    secrets: [s]\nsecrets:\n" + ext,
			`service "web": label secretd.on-update="signal:SIGHUPP": unknown signal "SIGHUPP"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.yml)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestTranslateDriverSecrets: a driver: secret, as `docker stack deploy`
// creates them, is a secret secretd compose creates with that driver and
// its driver_opts, named PROJECT_KEY, mounted like any other.
func TestTranslateDriverSecrets(t *testing.T) {
	tr, err := load(t, `
secrets:
  db_password:
    driver: shell
    driver_opts:
      lookup: pass show db/password
      timeout: 20s
    labels: {tier: db}
  api_key:
    driver: vault
    name: prod_api_key
  site_key:
    file: ./site.key
services:
  db:
    image: busybox
    secrets: [db_password, site_key]
  web:
    image: busybox
    secrets:
      - source: api_key
        target: api.key
        mode: 0400
`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range tr.Secrets {
		got = append(got, fmt.Sprintf("%s=%s driver=%q opts=%v labels=%v imported=%t", s.Key, s.Name, s.Driver, s.DriverOpts, s.Labels, s.Imported()))
	}
	want := []string{
		`api_key=prod_api_key driver="vault" opts=map[] labels=map[] imported=true`,
		`db_password=proj_db_password driver="shell" opts=map[lookup:pass show db/password timeout:20s] labels=map[tier:db] imported=true`,
		`site_key=proj_site_key driver="" opts=map[] labels=map[] imported=true`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("secrets:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	b, err := tr.YAML(false)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "drivers-v2.golden", b)
}

// TestBuildSecretsStay: a build's secrets are compose's own; the top-level
// entries they name stay in the translated file.
func TestBuildSecretsStay(t *testing.T) {
	tr, err := load(t, "services:\n  web:\n    build:\n      context: .\n      secrets: [npmrc]\n    secrets: [db]\nsecrets:\n  npmrc:\n    file: ./site.key\n  db:\n    external: true\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.Project.Secrets["npmrc"]; !ok || len(tr.Project.Secrets) != 1 {
		t.Errorf("top-level secrets after translation: %v, want npmrc only", tr.Project.Secrets)
	}
	if len(tr.Secrets) != 1 || tr.Secrets[0].Key != "db" {
		t.Errorf("secretd serves %+v, want db only", tr.Secrets)
	}
}

// TestTranslateOnUpdate: a service's secretd.on-update label becomes the
// on-update option of each of its secretd volumes, canonical, and part of
// their names; a service without it keeps the names it had.
func TestTranslateOnUpdate(t *testing.T) {
	const yml = `
secrets:
  s:
    external: true
services:
  web:
    image: busybox
    labels: {secretd.on-update: "signal:hup"}
    secrets:
      - s
      - source: s
        target: /etc/web/s.conf
  plain:
    image: busybox
    secrets: [s]
`
	tr, err := load(t, yml)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]Volume{}
	for _, v := range tr.Volumes() {
		byKey[v.Key] = v
	}
	var web, plain []Volume
	for _, v := range tr.Volumes() {
		if strings.HasPrefix(v.Key, "secretd-web-") {
			web = append(web, v)
		}
		if strings.HasPrefix(v.Key, "secretd-plain-") {
			plain = append(plain, v)
		}
	}
	if len(plain) != 1 {
		t.Fatalf("plain's volumes: %+v", plain)
	}
	if len(web) != 2 || web[0].Options["on-update"] != "signal:SIGHUP" || web[1].Options["on-update"] != "signal:SIGHUP" {
		t.Errorf("web's volumes %+v, want both with on-update signal:SIGHUP", web)
	}
	// The key of plain's volume is the one earlier versions gave it.
	if v, ok := byKey[volumeKey("plain", SecretsDir+"\n"+plain[0].Options["secrets"])]; !ok || v.Options["on-update"] != "" {
		t.Errorf("plain's volume is not the one it had: %+v", tr.Volumes())
	}
	for _, v := range web {
		o := v.Options
		without := volumeKey("web", SecretsDir+"\n"+o["secrets"]+"\n"+o["configs"]+"\n"+o["scope"])
		if o["file"] != "" {
			without = volumeKey("web", "/etc/web/s.conf\n"+o["secrets"]+"\n"+o["configs"]+"\n"+o["scope"])
		}
		if v.Key == without {
			t.Errorf("web's volume %s with an on-update has the name of one without", v.Key)
		}
	}
}

// stackWithConfigs is seed 004's nginx walkthrough as a stack file, with
// site.conf as a config, and a rendered DSN.
const stackWithConfigs = `
secrets:
  site.key:
    file: ./site.key
  db_password:
    external: true
  dsn:
    environment: DSN_TEMPLATE
    template_driver: golang
configs:
  site.conf:
    file: ./site.key
  banner:
    content: "hello from {{ .Service.Name }}"
    template_driver: golang
  app.ini:
    environment: APP_INI
services:
  nginx:
    image: busybox
    secrets: [site.key]
    configs:
      - source: site.conf
        target: /etc/nginx/conf.d/site.conf
  app:
    image: busybox
    secrets: [db_password, dsn]
    configs:
      - banner
      - source: app.ini
        target: /run/secrets/app.ini
        uid: "101"
        mode: 0440
`

func TestTranslateConfigs(t *testing.T) {
	tr, err := load(t, stackWithConfigs, `DSN_TEMPLATE=dsn=app:{{ secret "db_password" }}@db`, "APP_INI=[app]")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range append(tr.Secrets, tr.Configs...) {
		k := "external"
		switch {
		case s.File != "":
			k = "file " + filepath.Base(s.File)
		case s.HasContent:
			k = "content " + s.Content
		case s.Env != "":
			k = "env " + s.Env
		}
		if s.Template != "" {
			k += ", template " + s.Template
		}
		got = append(got, s.Kind.Noun()+" "+s.Key+"="+s.Name+" ("+k+")")
	}
	want := `secret db_password=db_password (external), secret dsn=proj_dsn (env DSN_TEMPLATE, template golang), secret site.key=proj_site.key (file site.key), ` +
		`config app.ini=proj_app.ini (content [app]), config banner=proj_banner (content hello from {{ .Service.Name }}, template golang), config site.conf=proj_site.conf (file site.key)`
	if s := strings.Join(got, ", "); s != want {
		t.Errorf("objects:\n%s\nwant\n%s", s, want)
	}
	b, err := tr.YAML(true)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "configs-v1.golden", b)
	if strings.HasPrefix(string(b), "configs:") || strings.Contains(string(b), "\nconfigs:") || strings.Contains(string(b), "    configs:\n") {
		t.Error("the translated file still has configs: (docker-compose v1 would only warn about them)")
	}
}
