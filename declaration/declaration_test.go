package declaration

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/secretd/secretd/errdefs"
)

func TestParseValid(t *testing.T) {
	def := func(name string) Entry { return Entry{Source: name, Target: name, Mode: 0o444} }
	tests := []struct {
		in   string
		want []Entry
	}{
		{"db_password", []Entry{def("db_password")}},
		{"  db_password  ", []Entry{def("db_password")}},
		{"a;b", []Entry{def("a"), def("b")}},
		// A trailing ";" ends the last entry.
		{"a;", []Entry{def("a")}},
		{"a;b; \n", []Entry{def("a"), def("b")}},
		{"db_password;source=api_key,target=api.key,mode=0400", []Entry{
			def("db_password"),
			{Source: "api_key", Target: "api.key", Mode: 0o400},
		}},
		{"source=tls,target=certs/tls.key,uid=101,gid=101,mode=0440", []Entry{
			{Source: "tls", Target: "certs/tls.key", UID: 101, GID: 101, Mode: 0o440},
		}},
		{"source=x", []Entry{def("x")}},
		{" source = x , target = a b/c , uid = 7 ", []Entry{{Source: "x", Target: "a b/c", UID: 7, Mode: 0o444}}},
		{"Source=x,TARGET=y", []Entry{{Source: "x", Target: "y", Mode: 0o444}}},
		// Docker's --secret takes src= too (seed 004: src=homepage,target=...).
		{"src=homepage,target=index.html", []Entry{{Source: "homepage", Target: "index.html", Mode: 0o444}}},
		{"SRC=x@2", []Entry{{Source: "x", Version: 2, Target: "x", Mode: 0o444}}},
		{"x@3", []Entry{{Source: "x", Version: 3, Target: "x", Mode: 0o444}}},
		{"source=x@12,target=t", []Entry{{Source: "x", Version: 12, Target: "t", Mode: 0o444}}},
		{"x@2147483647", []Entry{{Source: "x", Version: 2147483647, Target: "x", Mode: 0o444}}},
		{"source=x,mode=400", []Entry{{Source: "x", Target: "x", Mode: 0o400}}},
		{"source=x,mode=0", []Entry{{Source: "x", Target: "x", Mode: 0}}},
		{"source=x,mode=0777", []Entry{{Source: "x", Target: "x", Mode: 0o777}}},
		{"source=x,mode=00000400", []Entry{{Source: "x", Target: "x", Mode: 0o400}}},
		{"source=x,uid=2147483647,gid=0", []Entry{{Source: "x", Target: "x", UID: 2147483647, Mode: 0o444}}},
		{`source=x,target=a\b`, []Entry{{Source: "x", Target: `a\b`, Mode: 0o444}}},
		{"source=x,target=a=b", []Entry{{Source: "x", Target: "a=b", Mode: 0o444}}},
		{"source=x,target=.hidden/..y/z", []Entry{{Source: "x", Target: ".hidden/..y/z", Mode: 0o444}}},
		{"source=x,target=a.;source=y,target=a..b", []Entry{
			{Source: "x", Target: "a.", Mode: 0o444},
			{Source: "y", Target: "a..b", Mode: 0o444},
		}},
		{"source=x,target=" + strings.Repeat("a", 255), []Entry{{Source: "x", Target: strings.Repeat("a", 255), Mode: 0o444}}},
		{"source=x,target=" + strings.Repeat("a/", 511) + "b", []Entry{{Source: "x", Target: strings.Repeat("a/", 511) + "b", Mode: 0o444}}},
		// The same secret may appear under several names.
		{"x;source=x,target=y;source=x@1,target=z", []Entry{
			def("x"),
			{Source: "x", Target: "y", Mode: 0o444},
			{Source: "x", Version: 1, Target: "z", Mode: 0o444},
		}},
		// Siblings and shared directories are fine; only file/dir clashes are not.
		{"source=a,target=d/a;source=b,target=d/b;source=c,target=d/e/c;source=d,target=dd", []Entry{
			{Source: "a", Target: "d/a", Mode: 0o444},
			{Source: "b", Target: "d/b", Mode: 0o444},
			{Source: "c", Target: "d/e/c", Mode: 0o444},
			{Source: "d", Target: "dd", Mode: 0o444},
		}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseMaxEntries(t *testing.T) {
	names := make([]string, maxEntries)
	for i := range names {
		names[i] = "s" + strconv.Itoa(i)
	}
	got, err := Parse(strings.Join(names, ";"))
	if err != nil || len(got) != maxEntries {
		t.Fatalf("Parse(%d entries) = %d entries, %v", maxEntries, len(got), err)
	}
	// A trailing ";" is not one more entry.
	if got, err := Parse(strings.Join(names, ";") + ";"); err != nil || len(got) != maxEntries {
		t.Fatalf("Parse(%d entries and a trailing ;) = %d entries, %v", maxEntries, len(got), err)
	}
	_, err = Parse(strings.Join(append(names, "one_more"), ";"))
	if err == nil || !strings.Contains(err.Error(), "too many entries (257): at most 256 allowed") {
		t.Fatalf("Parse(257 entries) error = %v", err)
	}
}

func TestParseInvalid(t *testing.T) {
	long := strings.Repeat("a", 256)
	tests := []struct {
		in   string
		want string // the whole error, or a part of it after "..."
	}{
		{"", "no secrets declared"},
		{" \t\n", "no secrets declared"},
		{"a;;b", `entry 2 "": empty entry`},
		{"a;;", `entry 2 "": empty entry`},
		{";", "no secrets declared"},
		{" ; ", "no secrets declared"},
		{";a", `entry 1 "": empty entry`},
		{"a; ;b", `entry 2 "": empty entry`},

		// Options.
		{"source=x,foo=1", `entry 1 "source=x,foo=1": unknown option "foo"`},
		{"source=x,src=y", `entry 1 "source=x,src=y": option "source" given twice (src= is source=)`},
		{"src=x,source=y", `entry 1 "src=x,source=y": option "source" given twice`},
		{"=x", `entry 1 "=x": unknown option ""`},
		{"a,b", `entry 1 "a,b": option "a" is not a key=value pair`},
		{"source=x,target", `entry 1 "source=x,target": option "target" is not a key=value pair`},
		{"source=x,", `entry 1 "source=x,": empty option`},
		{"source=x,,target=y", `entry 1 "source=x,,target=y": empty option`},
		{"source=x,source=y", `entry 1 "source=x,source=y": option "source" given twice`},
		{"source=x,mode=0400,Mode=0400", `entry 1 "source=x,mode=0400,Mode=0400": option "mode" given twice`},
		{"a;target=y,mode=0400", `entry 2 "target=y,mode=0400": source is missing`},

		// Source and version.
		{"source=", `entry 1 "source=": source "": name must be provided`},
		{"-x", `entry 1 "-x": source "-x": invalid name`},
		{"x y", `entry 1 "x y": source "x y": invalid name`},
		{"a;b/c", `entry 2 "b/c": source "b/c": invalid name`},
		{strings.Repeat("n", 65), `source "` + strings.Repeat("n", 65) + `": invalid name`},
		{"x@0", `entry 1 "x@0": version "0" is not a positive integer`},
		{"x@-1", `entry 1 "x@-1": version "-1" is not a positive integer`},
		{"x@+1", `version "+1" is not a positive integer`},
		{"x@x", `entry 1 "x@x": version "x" is not a positive integer`},
		{"x@", `entry 1 "x@": version "" is not a positive integer`},
		{"x@01", `version "01" is not a positive integer`},
		{"x@1@2", `version "1@2" is not a positive integer`},
		{"source=x@2147483648", `version "2147483648" is too large`},
		{"source=x@99999999999999999999999", `version "99999999999999999999999" is too large`},
		{"@1", `entry 1 "@1": source "": name must be provided`},

		// Target.
		{"source=x,target=", `entry 1 "source=x,target=": target must not be empty`},
		{"source=x,target=/etc/passwd", `entry 1 "source=x,target=/etc/passwd": target "/etc/passwd" must be a relative path`},
		{"source=x,target=//x", `target "//x" must be a relative path`},
		{"source=x,target=..", `target ".." must not contain ".." components`},
		{"source=x,target=a/../../b", `target "a/../../b" must not contain ".." components`},
		{"source=x,target=a/..", `target "a/.." must not contain ".." components`},
		{"source=x,target=.", `target "." must not contain "." components`},
		{"source=x,target=./a", `target "./a" must not contain "." components`},
		{"source=x,target=a/./b", `target "a/./b" must not contain "." components`},
		{"source=x,target=a//b", `target "a//b" has an empty path component`},
		{"source=x,target=a/", `target "a/" must not end with "/"`},
		{"source=x,target=..data", `target "..data" must not start with ".." (reserved for atomic updates)`},
		{"source=x,target=..2024_01_01/x", `target "..2024_01_01/x" must not start with ".."`},
		{"source=x,target=...", `target "..." must not start with ".."`},
		{"source=x,target=a\x00b", `target "a\x00b" contains a control character`},
		{"source=x,target=a\nb", `target "a\nb" contains a control character`},
		{"source=x,target=a\x7fb", `target "a\x7fb" contains a control character`},
		{"source=x,target=a\u0085b", `contains a control character`},
		{"source=x,target=a\xffb", `target "a\xffb" is not valid UTF-8`},
		{"source=x,target=" + long, `target has a path component longer than 255 bytes`},
		{"source=x,target=a/" + long, `target has a path component longer than 255 bytes`},
		{"source=x,target=" + strings.Repeat("a/", 512) + "b", `target is longer than 1024 bytes`},

		// uid and gid.
		{"source=x,uid=abc", `entry 1 "source=x,uid=abc": uid "abc" is not a number`},
		{"source=x,gid=1.5", `gid "1.5" is not a number`},
		{"source=x,uid=", `uid "" is not a number`},
		{"source=x,uid=+1", `uid "+1" is not a number`},
		{"source=x,uid=0x10", `uid "0x10" is not a number`},
		{"source=x,uid=-1", `uid "-1" is out of range (0 to 2147483647)`},
		{"source=x,gid=2147483648", `gid "2147483648" is out of range (0 to 2147483647)`},
		{"source=x,gid=99999999999999999999999", `gid "99999999999999999999999" is out of range`},

		// Mode.
		{"a;source=x,mode=999", `entry 2 "source=x,mode=999": mode "999" is not an octal number`},
		{"source=x,mode=0999", `mode "0999" is not an octal number`},
		{"source=x,mode=0o400", `mode "0o400" is not an octal number`},
		{"source=x,mode=-400", `mode "-400" is not an octal number`},
		{"source=x,mode=", `mode "" is not an octal number`},
		{"source=x,mode=rw", `mode "rw" is not an octal number`},
		{"source=x,mode=1777", `entry 1 "source=x,mode=1777": mode "1777" is above 0777`},
		{"source=x,mode=1000", `mode "1000" is above 0777`},
		{"source=x,mode=7777777777777777777777777", `mode "7777777777777777777777777" is above 0777`},

		// Layout across entries.
		{"x;y;source=z,target=x", `entry 3 "source=z,target=x": duplicate target "x" (entries 1 and 3)`},
		{"x;x", `entry 2 "x": duplicate target "x" (entries 1 and 2)`},
		{"x@1;x@2", `entry 2 "x@2": duplicate target "x" (entries 1 and 2)`},
		{"a;source=b,target=a/b", `entry 2 "source=b,target=a/b": target "a/b" is inside target "a", which is a file (entries 1 and 2)`},
		{"a;source=b,target=a/c/d", `target "a/c/d" is inside target "a", which is a file (entries 1 and 2)`},
		{"source=b,target=a/b;a", `entry 2 "a": target "a" is a directory of another target (entries 1 and 2)`},
		{"source=b,target=a/c/d;x;source=y,target=a/c", `entry 3 "source=y,target=a/c": target "a/c" is a directory of another target (entries 1 and 3)`},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want error %q", tt.in, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error = %q, want it to contain %q", tt.in, err, tt.want)
		}
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Parse(%q) error %q does not wrap errdefs.ErrInvalid", tt.in, err)
		}
		if msg := err.Error(); strings.HasSuffix(msg, ".") || msg[:1] != strings.ToLower(msg[:1]) {
			t.Errorf("Parse(%q) error %q: want lowercase, no trailing period", tt.in, msg)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		e    Entry
		want string
	}{
		{Entry{Source: "x", Target: "x", Mode: 0o444}, "source=x,target=x,uid=0,gid=0,mode=0444"},
		{Entry{Source: "tls", Version: 4, Target: "certs/tls.key", UID: 101, GID: 102, Mode: 0o440},
			"source=tls@4,target=certs/tls.key,uid=101,gid=102,mode=0440"},
		// An empty Target means the default, as in a declaration.
		{Entry{Source: "x", Mode: 0o400}, "source=x,target=x,uid=0,gid=0,mode=0400"},
		{Entry{Source: "x", Target: "x"}, "source=x,target=x,uid=0,gid=0,mode=0000"},
	}
	for _, tt := range tests {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.e, got, tt.want)
		}
	}
	if got := Format(nil); got != "" {
		t.Errorf("Format(nil) = %q, want empty", got)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, in := range []string{
		"db_password",
		"db_password;source=api_key,target=api.key,mode=0400",
		"source=tls,target=certs/tls.key,uid=101,gid=101,mode=0440",
		"x@7;source=x,target=dir/x,mode=0;source=y@2147483647,uid=2147483647,gid=5,mode=0777",
		`source=x,target=a b\c/=d/.e`,
	} {
		entries, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		out := Format(entries)
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Format(Parse(%q))) = Parse(%q): %v", in, out, err)
		}
		if !reflect.DeepEqual(again, entries) {
			t.Errorf("round trip of %q via %q: got %+v, want %+v", in, out, again, entries)
		}
		if Format(again) != out {
			t.Errorf("Format is not canonical: %q then %q", out, Format(again))
		}
	}
}

// An error quotes at most a bounded piece of each entry: labels can be
// megabytes, and errors reach the log and the audit trail.
func TestParseErrorsClipEntryText(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	for _, in := range []string{
		"source=" + huge,
		"source=db,target=" + huge + "/",
		"source=db,bogus" + huge + "=1",
		"source=db,mode=" + huge,
		huge + "é",
	} {
		_, err := Parse(in)
		if err == nil {
			t.Fatalf("Parse of a 1 MiB entry succeeded")
		}
		if n := len(err.Error()); n > 1024 {
			t.Errorf("error for a 1 MiB entry is %d bytes: %.120s...", n, err)
		}
		if !strings.Contains(err.Error(), "bytes)") {
			t.Errorf("error does not say the text was cut: %.200s", err)
		}
	}
	if got := Clip("aé", 2); got != "a...(3 bytes)" {
		t.Errorf("Clip cut inside a rune: %q", got)
	}
}

// TestParseLabel accepts absolute targets, which a volume's declaration
// never holds, and still checks each entry and the layout.
func TestParseLabel(t *testing.T) {
	es, err := ParseLabel("a;src=b,target=/etc/app/b.conf,mode=0400")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[1].Target != "/etc/app/b.conf" || !es[1].Absolute() || es[0].Absolute() || es[1].Mode != 0o400 {
		t.Errorf("parsed %+v", es)
	}
	if _, err := Parse("source=b,target=/etc/app/b.conf"); err == nil {
		t.Error("Parse took an absolute target")
	}
	for _, bad := range []string{"source=b,target=/etc/../x", "source=b,target=/", "source=b,target=/x;source=c,target=/x"} {
		if _, err := ParseLabel(bad); err == nil {
			t.Errorf("ParseLabel(%q) took it", bad)
		}
	}
}

// Configs are declared in the same syntax; the canonical form marks them
// config=NAME, so one string holds both kinds and reads back unchanged.
func TestConfigs(t *testing.T) {
	cfg := func(name, target string) Entry { return Entry{Kind: Config, Source: name, Target: target, Mode: 0o444} }
	got, err := ParseConfigs("site.conf;source=app.ini@2,target=etc/app.ini,uid=101,mode=0440")
	want := []Entry{cfg("site.conf", "site.conf"), {Kind: Config, Source: "app.ini", Version: 2, Target: "etc/app.ini", UID: 101, Mode: 0o440}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseConfigs: %+v, %v", got, err)
	}
	mixed := append([]Entry{{Source: "db", Target: "db", Mode: 0o444}}, got...)
	text := Format(mixed)
	if text != "source=db,target=db,uid=0,gid=0,mode=0444;config=site.conf,target=site.conf,uid=0,gid=0,mode=0444;config=app.ini@2,target=etc/app.ini,uid=101,gid=0,mode=0440" {
		t.Errorf("Format: %s", text)
	}
	back, err := Parse(text)
	if err != nil || !reflect.DeepEqual(back, mixed) {
		t.Errorf("canonical form read back: %+v, %v", back, err)
	}
	if _, err := Parse("config=a,source=b"); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("config= and source= in one entry: %v", err)
	}
	if _, err := ParseConfigs(""); err == nil || !strings.Contains(err.Error(), "no configs declared") {
		t.Errorf("empty configs: %v", err)
	}
}

// A volume's secrets and configs share its files: a target may be taken
// once, whichever kind takes it, and the error names both.
func TestParseVolume(t *testing.T) {
	es, err := ParseVolume("db;source=tls,target=tls/key", "site.conf;source=app,target=conf/app.ini")
	if err != nil || len(es) != 4 || es[0].Kind != Secret || es[2].Kind != Config || es[3].Target != "conf/app.ini" {
		t.Fatalf("ParseVolume: %+v, %v", es, err)
	}
	if es, err := ParseVolume("", "site.conf"); err != nil || len(es) != 1 || es[0].Kind != Config {
		t.Errorf("configs only: %+v, %v", es, err)
	}
	for _, c := range []struct{ secrets, configs, want string }{
		{"db", "source=x,target=db", `duplicate target "db": secret "db" and config "x"`},
		{"source=s,target=tls", "source=c,target=tls/ca.pem", `target "tls/ca.pem" is inside target "tls", which is a file: secret "s" and config "c"`},
		{"", "", "no secrets declared"},
		{"db", "bad name!", `configs: entry 1 "bad name!"`},
	} {
		if _, err := ParseVolume(c.secrets, c.configs); err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ParseVolume(%q, %q): %v, want %q", c.secrets, c.configs, err, c.want)
		}
	}
	if es, err := ParseLabels("db", "source=site.conf,target=/etc/nginx/conf.d/site.conf"); err != nil || es[1].Target != "/etc/nginx/conf.d/site.conf" {
		t.Errorf("ParseLabels: %+v, %v", es, err)
	}
}

// `--config` follows Swarm: the default target is /NAME, a relative one is
// taken from /.
func TestParseConfigEntry(t *testing.T) {
	for in, want := range map[string]Entry{
		"site.conf": {Kind: Config, Source: "site.conf", Target: "/site.conf", Mode: 0o444},
		"src=site.conf,target=/etc/nginx/conf.d/site.conf":      {Kind: Config, Source: "site.conf", Target: "/etc/nginx/conf.d/site.conf", Mode: 0o444},
		"source=app@3,target=etc/app.ini,uid=1,gid=2,mode=0400": {Kind: Config, Source: "app", Version: 3, Target: "/etc/app.ini", UID: 1, GID: 2, Mode: 0o400},
	} {
		got, err := ParseConfigEntry(in)
		if err != nil || got != want {
			t.Errorf("ParseConfigEntry(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := ParseConfigEntry("source=x,target=/"); err == nil {
		t.Error("target / accepted")
	}
}
