package audit_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secretd/secretd/internal/audit"
)

func lines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestOpenDefaultFile(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	l, err := audit.Open("", root, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Log(audit.Event{Event: audit.SecretCreate, Secret: "db", SecretID: "abc", Version: 1,
		Actor: &audit.Actor{Cred: true, UID: 0, GID: 0, PID: 42}})
	l.Close()
	p := filepath.Join(root, "audit.log")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("audit.log mode %v, want 0600", fi.Mode().Perm())
	}
	// A second open appends: nothing written before is lost.
	l, err = audit.Open("", root, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Log(audit.Event{Event: audit.SecretRemove, Secret: "db"})
	l.Close()
	b, _ := os.ReadFile(p)
	got := lines(t, b)
	if len(got) != 2 {
		t.Fatalf("want 2 lines, got %d:\n%s", len(got), b)
	}
	first := got[0]
	if first["event"] != "secret.create" || first["secret"] != "db" || first["version"] != 1.0 {
		t.Errorf("first line %v", first)
	}
	// uid 0 is root, not "unknown": it must be written.
	if actor, _ := first["actor"].(map[string]any); actor == nil || actor["uid"] != 0.0 || actor["pid"] != 42.0 {
		t.Errorf("actor %v, want uid 0 and pid 42", first["actor"])
	}
	if _, err := time.Parse(time.RFC3339Nano, first["time"].(string)); err != nil {
		t.Errorf("time %v: %v", first["time"], err)
	}
}

func TestOpenTightensMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "trail.log")
	if err := os.WriteFile(p, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(p, "/nonexistent", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestOffAndStdout(t *testing.T) {
	l, err := audit.Open(audit.Off, t.TempDir(), nil, nil)
	if err != nil || l != nil {
		t.Fatalf("off: %v %v", l, err)
	}
	// A nil Logger is a valid, silent one.
	l.Log(audit.Event{Event: audit.SecretCreate})
	l.Deny(audit.SecretRemove, nil, audit.Event{}, errors.New("x"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	dir := t.TempDir()
	l, err = audit.Open(audit.Stdout, dir, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Deny(audit.SecretRemove, &audit.Actor{CN: "ops"}, audit.Event{Secret: "db"}, errors.New("secret 'db' is in use by the following container: web\n"))
	got := lines(t, out.Bytes())
	want := map[string]any{"event": "denied", "action": "secret.remove", "secret": "db",
		"actor": map[string]any{"cn": "ops"}, "reason": "secret 'db' is in use by the following container: web"}
	delete(got[0], "time")
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("got %v\nwant %v", got[0], want)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("stdout trail wrote files: %v", ents)
	}
}

// TestEventHasNoDataField guards the design: no field of an Event can
// carry bytes, so a caller cannot put a secret's value in the trail.
func TestEventHasNoDataField(t *testing.T) {
	var walk func(reflect.Type, string)
	walk = func(ty reflect.Type, path string) {
		for i := range ty.NumField() {
			f := ty.Field(i)
			p := path + "." + f.Name
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Uint8 {
					t.Errorf("%s is a byte slice", p)
				}
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Interface || ft.Kind() == reflect.Map {
				t.Errorf("%s can hold anything", p)
			}
			if strings.Contains(strings.ToLower(f.Name), "data") || strings.Contains(strings.ToLower(f.Name), "value") {
				t.Errorf("%s looks like a data field", p)
			}
			if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Time{}) {
				walk(ft, p)
			}
		}
	}
	walk(reflect.TypeOf(audit.Event{}), "Event")
}

func TestConcurrentLinesStayWhole(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(p, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				l.Log(audit.Event{Event: audit.ContainerMount, Container: strings.Repeat("c", i+1), Mount: "/run/secretd/mounts/x",
					Secrets: []audit.SecretRef{{Name: "a", Version: 1, Target: "a"}}})
			}
		}()
	}
	wg.Wait()
	l.Close()
	b, _ := os.ReadFile(p)
	if n := len(lines(t, b)); n != 1000 {
		t.Errorf("want 1000 lines, got %d", n)
	}
}

type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrorsReportedOnce(t *testing.T) {
	var reports []error
	l := audit.New(brokenWriter{}, func(err error) { reports = append(reports, err) })
	for range 3 {
		l.Log(audit.Event{Event: audit.SecretCreate})
	}
	if len(reports) != 1 || !strings.Contains(reports[0].Error(), "disk full") {
		t.Errorf("reports %v, want one naming the cause", reports)
	}
}

// A line quotes a bounded piece of what a request or a label gave.
func TestLinesClipFreeText(t *testing.T) {
	var buf bytes.Buffer
	l := audit.New(&buf, nil)
	huge := strings.Repeat("y", 1<<20)
	added := make([]string, 1000)
	for i := range added {
		added[i] = huge[:1000]
	}
	secrets := []audit.SecretRef{{Name: huge, Target: huge}}
	l.Deny(audit.ContainerMount, nil, audit.Event{Secret: huge, Volume: huge, Added: added, Secrets: secrets}, errors.New("entry 1 "+huge))
	if n := buf.Len(); n > 64<<10 {
		t.Fatalf("one audit line is %d bytes", n)
	}
	if !strings.Contains(buf.String(), "...(1048576 bytes)") || !strings.Contains(buf.String(), "...(936 more)") {
		t.Fatalf("the line does not say what was cut: %.300s", buf.String())
	}
	if secrets[0].Name != huge {
		t.Fatalf("Log changed the caller's event")
	}
}
