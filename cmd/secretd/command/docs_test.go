package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/filters"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/internal/fakeclient"
)

// repoRoot is the module's root, from this package's directory.
const repoRoot = "../../.."

// docCommand is one command line a document shows.
type docCommand struct {
	where string // file:line
	line  string // as written, continuation lines joined
	// inline is a command named in a sentence (`secretd ps`), often a
	// fragment ("`secretd container update --secret-add`"): only its
	// command path and flag names are checked.
	inline bool
	// failing is a command shown with the error it prints ("Error: ...")
	// in a situation the test does not set up (the daemon down): it is
	// parsed, not run.
	failing bool
}

// docFiles are the README and every page under docs/.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	return append([]string{filepath.Join(repoRoot, "README.md")}, files...)
}

var (
	fenceRE  = regexp.MustCompile("^\\s*```(\\w*)")
	inlineRE = regexp.MustCompile("`(secretd [^`]+)`")
)

// extractCommands finds the command lines of a Markdown file: in fenced
// blocks without a language or marked console, each line after a `$ ` or
// `# ` prompt (a `# ` line that does not start with a command is a comment),
// and each line of an unmarked block that starts with a command; in
// indented blocks, lines after a `$ ` prompt; in prose, code spans that
// start with `secretd `.
func extractCommands(path string, text string) []docCommand {
	var out []docCommand
	lines := strings.Split(text, "\n")
	inFence, lang := false, ""
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		where := fmt.Sprintf("%s:%d", filepath.Base(path), i+1)
		if m := fenceRE.FindStringSubmatch(l); m != nil {
			inFence = !inFence
			lang = m[1]
			continue
		}
		if inFence && lang != "" && lang != "console" {
			continue
		}
		if !inFence {
			if strings.HasPrefix(l, "    $ ") {
				cmd, n := joinContinued(lines, i, strings.TrimPrefix(l, "    $ "))
				out = append(out, docCommand{where: where, line: cmd, failing: showsError(lines, n)})
				i = n
				continue
			}
			for _, m := range inlineRE.FindAllStringSubmatch(l, -1) {
				out = append(out, docCommand{where: where, line: m[1], inline: true})
			}
			continue
		}
		s := strings.TrimLeft(l, " ")
		var cmd string
		switch {
		case strings.HasPrefix(s, "$ "):
			cmd = s[2:]
		case strings.HasPrefix(s, "# ") && startsWithCommand(s[2:]):
			cmd = s[2:]
		case lang == "" && startsWithCommand(s):
			cmd = s
		default:
			continue
		}
		cmd, i = joinContinued(lines, i, cmd)
		out = append(out, docCommand{where: where, line: cmd, failing: showsError(lines, i)})
	}
	return out
}

// showsError reports whether the line after line i is an error message.
func showsError(lines []string, i int) bool {
	return i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), "Error")
}

// joinContinued joins the lines a trailing backslash continues.
func joinContinued(lines []string, i int, first string) (string, int) {
	cmd := first
	for strings.HasSuffix(strings.TrimRight(cmd, " "), `\`) && i+1 < len(lines) {
		cmd = strings.TrimRight(strings.TrimSuffix(strings.TrimRight(cmd, " "), `\`), " ") + " " + strings.TrimSpace(lines[i+1])
		i++
	}
	return cmd, i
}

// knownPrograms are the programs whose lines the extractor takes for
// commands in a block without prompts.
var knownPrograms = []string{"secretd", "sudo", "docker", "docker-compose", "make", "printf", "systemctl"}

func startsWithCommand(s string) bool {
	first, _, _ := strings.Cut(s, " ")
	return slices.Contains(knownPrograms, first)
}

// shellSplit splits a command line into simple commands, each a list of
// words, as a POSIX shell would for what the docs use: quotes, backslash
// escapes, comments, and the operators | || && ; (a here-string or
// redirection target is dropped with its operator).
func shellSplit(line string) ([][]string, error) {
	var cmds [][]string
	var words []string
	var w strings.Builder
	inWord, skipNext := false, false
	endWord := func() {
		if inWord {
			if skipNext {
				skipNext = false
			} else {
				words = append(words, w.String())
			}
		}
		w.Reset()
		inWord = false
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
		}
		words = nil
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			w.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '"':
			inWord = true
			for i++; ; i++ {
				if i >= len(line) {
					return nil, errors.New("unterminated double quote")
				}
				if line[i] == '"' {
					break
				}
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
					i++
				}
				w.WriteByte(line[i])
			}
		case c == '\\' && i+1 < len(line):
			w.WriteByte(line[i+1])
			inWord = true
			i++
		case c == '$' && strings.HasPrefix(line[i:], "$("):
			// Command substitution: kept as one word's text.
			depth := 0
			for ; i < len(line); i++ {
				w.WriteByte(line[i])
				if line[i] == '(' {
					depth++
				} else if line[i] == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			inWord = true
		case c == '#' && !inWord:
			endCmd()
			return cmds, nil
		case c == ' ' || c == '\t':
			endWord()
		case c == '|' || c == ';' || c == '&':
			endCmd()
			if i+1 < len(line) && (line[i+1] == '|' || line[i+1] == '&') {
				i++
			}
		case c == '<' || c == '>':
			endWord()
			for i+1 < len(line) && strings.IndexByte("<>&0123456789", line[i+1]) >= 0 {
				i++
			}
			skipNext = true
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	endCmd()
	return cmds, nil
}

// program strips the environment assignments and sudo before a command.
func program(words []string) []string {
	for len(words) > 0 {
		switch {
		case words[0] == "sudo":
			words = words[1:]
		case regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(words[0]):
			words = words[1:]
		default:
			return words
		}
	}
	return words
}

// errDaemon is every answer of the docs test's daemon: a command that got
// this far parsed, and did everything it does before asking secretd.
var errDaemon = errors.New("the docs test's daemon answers nothing")

// docsClient answers Status as a daemon serving "secretd" would, so that
// `secretd run` and `secretd compose` go on to docker, and every other
// call with errDaemon.
func docsClient() *fakeclient.Client {
	no := func() error { return errDaemon }
	return &fakeclient.Client{
		StatusFunc: func(context.Context) (api.Status, error) { return api.Status{VolumeDriver: "secretd"}, nil },
		SecretCreateFunc: func(context.Context, string, map[string]string, []byte) (string, error) {
			return "", no()
		},
		SecretCreateFromSourceFunc: func(context.Context, string, map[string]string, client.SourceSpec) (string, error) {
			return "", no()
		},
		SecretListFunc:            func(context.Context, filters.Args) ([]api.Secret, error) { return nil, no() },
		SecretTableFunc:           func(context.Context, filters.Args) (api.SecretTable, error) { return api.SecretTable{}, no() },
		SecretInspectFunc:         func(context.Context, string) (api.Secret, error) { return api.Secret{}, no() },
		SecretRemoveFunc:          func(context.Context, string) error { return no() },
		SecretUpdateFunc:          func(context.Context, string, []byte, int) (api.Secret, error) { return api.Secret{}, no() },
		SecretUpdateIfChangedFunc: func(context.Context, string, []byte) (api.Secret, error) { return api.Secret{}, no() },
		SecretCreateTemplateFunc: func(context.Context, string, map[string]string, []byte, string) (string, error) {
			return "", no()
		},
		ConfigCreateFunc: func(context.Context, string, map[string]string, []byte, string) (string, error) {
			return "", no()
		},
		ConfigTableFunc:           func(context.Context, filters.Args) (api.SecretTable, error) { return api.SecretTable{}, no() },
		ConfigInspectFunc:         func(context.Context, string) (api.Config, error) { return api.Config{}, no() },
		ConfigRemoveFunc:          func(context.Context, string) error { return no() },
		ConfigUpdateFunc:          func(context.Context, string, []byte, int) (api.Config, error) { return api.Config{}, no() },
		ConfigUpdateIfChangedFunc: func(context.Context, string, []byte) (api.Config, error) { return api.Config{}, no() },
		UnlockFunc:                func(context.Context, string) error { return no() },
		UnlockKeyFunc:             func(context.Context) (string, error) { return "", no() },
		RotateUnlockKeyFunc:       func(context.Context) (string, error) { return "", no() },
		RotateKeyFunc:             func(context.Context) (int, error) { return 0, no() },
		TasksFunc:                 func(context.Context) ([]api.Task, error) { return nil, no() },
		ContainerUpdateFunc: func(context.Context, string, api.ContainerUpdateRequest) (api.Task, error) {
			return api.Task{}, no()
		},
	}
}

// parseOnly checks args against the command tree without running them:
// the command path, its flags and their values, its arguments.
func parseOnly(args []string) error {
	root := newFullRoot(cli.NewCli(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}))
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return err
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return err
	}
	return cmd.ValidateRequiredFlags()
}

// namesOnly checks a command named in a sentence: its command path, and
// that each flag it names exists (a value may be left out).
func namesOnly(args []string) error {
	root := newFullRoot(cli.NewCli(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}))
	cmd, _, err := root.Find(args)
	if err != nil {
		return err
	}
	if cmd.DisableFlagParsing {
		return nil // `secretd run ... --`: the rest is docker's
	}
	cmd.InitDefaultHelpFlag()
	cmd.InitDefaultVersionFlag() // the root's --version, which cobra adds at Execute
	lookup := func(f string) *pflag.Flag {
		name, _, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if !strings.HasPrefix(f, "--") {
			name = name[:1]
			if fl := cmd.Flags().ShorthandLookup(name); fl != nil {
				return fl
			}
			return cmd.InheritedFlags().ShorthandLookup(name)
		}
		if fl := cmd.Flags().Lookup(name); fl != nil {
			return fl
		}
		return cmd.InheritedFlags().Lookup(name)
	}
	path := strings.Fields(cmd.CommandPath())[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return nil
		case !strings.HasPrefix(a, "-") || a == "-":
			if len(path) > 0 && a == path[0] {
				path = path[1:]
			} else if cmd.Name() == "compose" {
				return nil // everything after COMMAND is compose's
			}
			continue
		}
		for _, f := range strings.Split(a, "/") {
			fl := lookup(f)
			if fl == nil {
				return fmt.Errorf("unknown flag %s for %q", f, cmd.CommandPath())
			}
			if fl.Value.Type() != "bool" && !strings.Contains(f, "=") {
				i++ // its value
			}
		}
	}
	return nil
}

// runDoc runs args through the whole command tree against docsClient,
// with stdin, in the current directory (the docs' fixtures), with
// stand-ins for docker and docker-compose on $PATH.
func runDoc(args []string, stdin string) error {
	var out bytes.Buffer
	root := newFullRoot(cli.NewCli(strings.NewReader(stdin), &out, &out).WithClient(docsClient()))
	root.SetArgs(args)
	_, err := root.ExecuteC()
	if errors.Is(err, errDaemon) {
		return nil
	}
	var many cli.Errors
	if errors.As(err, &many) && !slices.ContainsFunc(many, func(e error) bool { return !errors.Is(e, errDaemon) }) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out.String())
	}
	return nil
}

// noRun are command paths the docs test parses but never runs: they would
// start a daemon or change a store on this machine.
var noRun = []string{"secretd daemon", "secretd store"}

// makeTargets lists the targets of the Makefile and deploy/deploy.mk.
func makeTargets(t *testing.T) []string {
	t.Helper()
	var targets []string
	re := regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`)
	for _, f := range []string{"Makefile", "deploy/deploy.mk"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			targets = append(targets, m[1])
		}
	}
	return targets
}

// TestDocsCommandsRun: every secretd command the README and docs/ show
// runs as written: its command path, flags, values and arguments parse
// against the real command tree, and it runs up to the point where it asks
// the daemon (or, for secretd run and compose, to docker and compose)
// with the files a reader would have beside it (testdata/docs). Commands
// named in sentences name real commands and flags; every make target
// exists.
func TestDocsCommandsRun(t *testing.T) {
	targets := makeTargets(t)
	files := docFiles(t)
	for i, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = abs
	}
	fixtures, err := filepath.Abs(filepath.Join("testdata", "docs"))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for name, script := range map[string]string{
		// No compose v2: the compose tool is docker-compose v1.
		"docker":         "#!/bin/sh\n[ \"$1\" = compose ] && exit 1\nexit 0\n",
		"docker-compose": "#!/bin/sh\n[ \"$1\" = version ] && echo 1.29.2\nexit 0\n",
	} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("DB_PASSWORD", "from-the-environment")
	t.Setenv("API_TOKEN", "from-the-environment")
	t.Setenv(client.HostEnv, "unix:///nonexistent/secretd.sock")
	t.Chdir(fixtures)

	counts := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, dc := range extractCommands(f, string(b)) {
			cmds, err := shellSplit(dc.line)
			if err != nil {
				t.Errorf("%s: %q: %v", dc.where, dc.line, err)
				continue
			}
			stdin := "x"
			for i, words := range cmds {
				words = program(words)
				if len(words) == 0 {
					continue
				}
				if words[0] == "printf" && len(words) > 1 && i+1 < len(cmds) {
					stdin = words[len(words)-1]
					continue
				}
				switch words[0] {
				case "make":
					for _, a := range words[1:] {
						if !strings.Contains(a, "=") && !strings.HasPrefix(a, "-") && !slices.Contains(targets, a) {
							t.Errorf("%s: %q: make has no target %q", dc.where, dc.line, a)
						}
					}
					counts["make"]++
					continue
				case "secretd", "bin/secretd", "/usr/local/bin/secretd":
				default:
					continue
				}
				args := words[1:]
				path := "secretd " + strings.Join(args, " ")
				switch {
				case dc.inline:
					err = namesOnly(args)
					counts["named"]++
				case dc.failing || slices.ContainsFunc(noRun, func(p string) bool { return strings.HasPrefix(path, p+" ") }):
					err = parseOnly(args)
					counts["parsed"]++
				default:
					err = runDoc(args, stdin)
					counts["ran"]++
				}
				if err != nil {
					t.Errorf("%s: %s\n  fails as written: %v", dc.where, dc.line, err)
				}
			}
		}
	}
	t.Logf("docs commands: %v", counts)
	if counts["ran"] < 20 || counts["named"] < 30 || counts["make"] < 4 {
		t.Errorf("found too few commands to check (%v): did the extraction break?", counts)
	}
}

// TestDocsCommandExtraction pins what the extractor takes from Markdown.
func TestDocsCommandExtraction(t *testing.T) {
	md := "Run `secretd ps -q` or `secretd.on-update=none`.\n" +
		"```console\n$ printf 'a b' | secretd secret create x -   # note\nab12\n# make install\n# a comment\n$ secretd run --secret a \\\n    -- --rm img\n```\n" +
		"```go\nsecretd := 1\n```\n" +
		"```\nsecretd compose -f s.yml ps\nsome output\n```\n" +
		"    $ docker run --rm img\n"
	var got []string
	for _, c := range extractCommands("x.md", md) {
		got = append(got, fmt.Sprintf("%s %v %s", c.where, c.inline, c.line))
	}
	want := []string{
		"x.md:1 true secretd ps -q",
		"x.md:3 false printf 'a b' | secretd secret create x -   # note",
		"x.md:5 false make install",
		"x.md:7 false secretd run --secret a -- --rm img",
		"x.md:14 false secretd compose -f s.yml ps",
		"x.md:17 false docker run --rm img",
	}
	if !slices.Equal(got, want) {
		t.Errorf("extracted\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	split, err := shellSplit(`A=1 sudo secretd x 'a b' "c \"d\"" e\ f | g && h; i <<< 'j' # k`)
	wantSplit := [][]string{{"A=1", "sudo", "secretd", "x", "a b", `c "d"`, "e f"}, {"g"}, {"h"}, {"i"}}
	if err != nil || fmt.Sprint(split) != fmt.Sprint(wantSplit) {
		t.Errorf("shellSplit: %q %v, want %q", split, err, wantSplit)
	}
	if got := program(split[0]); !slices.Equal(got, []string{"secretd", "x", "a b", `c "d"`, "e f"}) {
		t.Errorf("program: %q", got)
	}
}

// TestExamplesParse: each command's examples (its --help and man page)
// parse against the command tree as written.
func TestExamplesParse(t *testing.T) {
	root := newFullRoot(cli.NewCli(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}))
	n := 0
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		lines := strings.Split(c.Example, "\n")
		for i := 0; i < len(lines); i++ {
			var l string
			l, i = joinContinued(lines, i, lines[i])
			cmds, err := shellSplit(strings.TrimSpace(l))
			if err != nil {
				t.Errorf("%s example %q: %v", c.CommandPath(), l, err)
				continue
			}
			for _, words := range cmds {
				words = program(words)
				if len(words) == 0 || words[0] != "secretd" {
					continue
				}
				n++
				var err error
				if c.DisableFlagParsing {
					err = namesOnly(words[1:])
				} else {
					err = parseOnly(words[1:])
				}
				if err != nil {
					t.Errorf("%s example %q: %v", c.CommandPath(), strings.TrimSpace(l), err)
				}
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if n < 40 {
		t.Errorf("only %d examples found", n)
	}
}
