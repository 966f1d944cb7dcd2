// Package templating renders the templated secrets and configs of one
// container: Go's text/template with Swarm's functions (secret, config,
// env, join) and Swarm's context (context.go). It knows nothing of the
// store or of mounts: the caller hands it what the container may read, by
// target, and gets back each rendering with what it read, so that a
// rotation of any of those can render it again.
//
// Unlike Swarm, where a template reading another templated file reads its
// raw text, a template here reads the other one's rendering; a loop of
// templates reading each other is refused.
package templating

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"path"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
)

// Driver is the one template driver, Swarm's: Go's text/template.
const Driver = "golang"

// SecretsDir is where a secret with a relative target is: a template may
// name it by either path.
const SecretsDir = "/run/secrets"

// Kind is what a file holds: "secret" or "config".
type Kind string

const (
	// Secret is a secret's file.
	Secret Kind = "secret"
	// Config is a config's file.
	Config Kind = "config"
)

// File is one secret or config the container declares, which its
// templates may read by target.
type File struct {
	Kind Kind
	// Name is the secret's or config's name, for messages.
	Name string
	// Target is the target as declared (default: the name).
	Target string
	// Load returns the file's data, and whether it is a template. It is
	// called at most once per Renderer; the Renderer wipes what it
	// returns at Close.
	Load func() (data []byte, template bool, err error)
}

// Identity is the container's context and environment, which a template
// may read.
type Identity struct {
	Context Context
	// Env is the container's environment, KEY=VALUE.
	Env []string
	// EnvErr, when set, says why Env is not known: a template that reads
	// the environment fails with it.
	EnvErr error
}

// Renderer renders the templates of one container. It is not safe for
// concurrent use.
type Renderer struct {
	// Files are what the container's templates may read.
	Files []File
	// Identity returns the container's context; it is asked only when a
	// template reads the context or the environment, and only once.
	Identity func() (Identity, error)
	// MaxSize is the cap of a rendering of kind k: it must be strictly
	// smaller. Nil means no cap.
	MaxSize func(k Kind) int

	loaded   map[int]*loadedFile
	rendered map[int]*Result
	stack    []int // files being rendered, outermost first
	identity *Identity
}

type loadedFile struct {
	data     []byte
	template bool
}

// Result is one rendering.
type Result struct {
	Data []byte
	// Sensitive says the rendering read a secret, directly or through
	// another template: it is a secret, whatever its own kind.
	Sensitive bool
	// Reads are the indices in Files of every file the rendering read,
	// directly or through other templates, sorted.
	Reads []int
}

// Error is a rendering that failed, with a message that names the
// template and never holds secret data.
type Error struct {
	msg string
}

func (e *Error) Error() string { return e.msg }

// Close wipes every file the Renderer loaded and every rendering it kept;
// the Results handed out stay the caller's.
func (r *Renderer) Close() {
	for _, f := range r.loaded {
		clear(f.data)
	}
	for _, res := range r.rendered {
		clear(res.Data)
	}
	r.loaded, r.rendered = nil, nil
}

// Render renders file i, which must be a template, and everything it reads.
func (r *Renderer) Render(i int) (Result, error) {
	if i < 0 || i >= len(r.Files) {
		return Result{}, fmt.Errorf("no file %d", i)
	}
	res, err := r.render(i)
	if err != nil {
		return Result{}, err
	}
	return Result{Data: bytes.Clone(res.Data), Sensitive: res.Sensitive, Reads: slices.Clone(res.Reads)}, nil
}

func (r *Renderer) describe(i int) string {
	f := r.Files[i]
	return fmt.Sprintf("%s '%s' (target %s)", f.Kind, f.Name, f.Target)
}

func (r *Renderer) load(i int) (*loadedFile, error) {
	if f, ok := r.loaded[i]; ok {
		return f, nil
	}
	data, tpl, err := r.Files[i].Load()
	if err != nil {
		return nil, err
	}
	if r.loaded == nil {
		r.loaded = map[int]*loadedFile{}
	}
	f := &loadedFile{data: data, template: tpl}
	r.loaded[i] = f
	return f, nil
}

// render renders file i once; a second read of it reuses the rendering.
func (r *Renderer) render(i int) (*Result, error) {
	if res, ok := r.rendered[i]; ok {
		return res, nil
	}
	if j := slices.Index(r.stack, i); j >= 0 {
		var chain []string
		for _, k := range append(r.stack[j:], i) {
			chain = append(chain, fmt.Sprintf("%s '%s'", r.Files[k].Kind, r.Files[k].Name))
		}
		return nil, &Error{fmt.Sprintf("templates read each other in a loop: %s: break the loop", strings.Join(chain, " reads "))}
	}
	f, err := r.load(i)
	if err != nil {
		return nil, err
	}
	if !f.template {
		return nil, fmt.Errorf("%s is not a template", r.describe(i))
	}
	r.stack = append(r.stack, i)
	defer func() { r.stack = r.stack[:len(r.stack)-1] }()

	me := r.Files[i]
	g := &rendering{r: r, i: i, res: &Result{Sensitive: me.Kind == Secret}, reads: map[int]bool{}}
	t, err := parseTemplate(me.Target, f.data, g.funcs())
	if err != nil {
		return nil, &Error{fmt.Sprintf("template %s does not parse: %v", r.describe(i), err)}
	}
	g.dynamic = computedTargets(t)
	var data any = struct{}{}
	if usesContext(t) {
		id, err := r.who(i)
		if err != nil {
			return nil, err
		}
		data = id.Context
	}
	max := 0
	if r.MaxSize != nil {
		max = r.MaxSize(me.Kind)
	}
	out := &capped{max: max}
	if err := t.Execute(out, data); err != nil {
		clear(out.buf.Bytes())
		return nil, r.execError(i, err, g.res.Sensitive, out)
	}
	res := g.res
	res.Data = out.buf.Bytes()
	for k := range g.reads {
		res.Reads = append(res.Reads, k)
	}
	slices.Sort(res.Reads)
	if r.rendered == nil {
		r.rendered = map[int]*Result{}
	}
	r.rendered[i] = res
	return res, nil
}

// rendering is one template being rendered: what it read so far.
type rendering struct {
	r   *Renderer
	i   int // the template's index in r.Files
	res *Result
	// reads are the files read, directly or through other templates.
	reads map[int]bool
	// dynamic says a target may have been computed, perhaps from a
	// secret: it is then named in an error only while the template has
	// read no secret.
	dynamic bool
	// env is the container's environment, once read.
	env     []string
	envRead bool
}

// funcs are the functions the template may call.
func (g *rendering) funcs() template.FuncMap {
	wrap := func(v string, err error) (string, error) {
		if err != nil {
			return "", funcError{err}
		}
		return v, nil
	}
	return template.FuncMap{
		"secret": func(target string) (string, error) { return wrap(g.read(Secret, target)) },
		"config": func(target string) (string, error) { return wrap(g.read(Config, target)) },
		"env":    g.getenv,
	}
}

// read returns the file of kind at target, rendered when it is a template.
func (g *rendering) read(kind Kind, target string) (string, error) {
	r, i, res := g.r, g.i, g.res
	j := r.find(kind, target)
	if j < 0 && g.dynamic && res.Sensitive {
		return "", &Error{fmt.Sprintf("template %s reads a %s by a target the container does not declare (the target is not shown: it was computed after the template read a secret)", r.describe(i), kind)}
	}
	if j < 0 {
		return "", &Error{fmt.Sprintf("template %s reads %s %q, but the container declares no %s with that target: declare it (as --%s src=NAME,target=%s), or fix the template",
			r.describe(i), kind, target, kind, kind, target)}
	}
	g.reads[j] = true
	if kind == Secret {
		res.Sensitive = true
	}
	f, err := r.load(j)
	if err != nil {
		return "", fmt.Errorf("template %s reads %s: %w", r.describe(i), r.describe(j), err)
	}
	if !f.template {
		return string(f.data), nil
	}
	inner, err := r.render(j)
	if err != nil {
		return "", err
	}
	for _, k := range inner.Reads {
		g.reads[k] = true
	}
	res.Sensitive = res.Sensitive || inner.Sensitive
	return string(inner.Data), nil
}

// getenv returns the container's environment variable name.
func (g *rendering) getenv(name string) (string, error) {
	if !g.envRead {
		id, err := g.r.who(g.i)
		if err == nil && id.EnvErr != nil {
			err = fmt.Errorf("template %s reads the container's environment (env %q): %w", g.r.describe(g.i), name, id.EnvErr)
		}
		if err != nil {
			return "", funcError{err}
		}
		g.env, g.envRead = id.Env, true
	}
	// The last of several definitions wins, as in a process's
	// environment; a variable not set reads empty, as in Swarm.
	for k := len(g.env) - 1; k >= 0; k-- {
		if n, v, ok := strings.Cut(g.env[k], "="); ok && n == name {
			return v, nil
		}
	}
	return "", nil
}

// who returns the container's identity, asking for it once.
func (r *Renderer) who(i int) (Identity, error) {
	if r.identity != nil {
		return *r.identity, nil
	}
	if r.Identity == nil {
		return Identity{}, &Error{fmt.Sprintf("template %s reads the container's context or environment, which is not known here", r.describe(i))}
	}
	id, err := r.Identity()
	if err != nil {
		return Identity{}, fmt.Errorf("template %s reads the container's context or environment: %w", r.describe(i), err)
	}
	r.identity = &id
	return id, nil
}

// find returns the index of the file of kind whose target is target, or
// -1. A config's relative target means the same path under "/" (Swarm's
// default target of a config is /NAME, and its templates name it NAME).
func (r *Renderer) find(kind Kind, target string) int {
	for j, f := range r.Files {
		if f.Kind == kind && f.Target == target {
			return j
		}
	}
	if kind == Secret {
		// A secret in /run/secrets is declared by either spelling.
		rel := strings.TrimPrefix(target, SecretsDir+"/")
		for j, f := range r.Files {
			if f.Kind == kind && strings.TrimPrefix(f.Target, SecretsDir+"/") == rel {
				return j
			}
		}
	}
	if kind == Config {
		abs := path.Join("/", target)
		for j, f := range r.Files {
			if f.Kind == kind && path.Join("/", f.Target) == abs {
				return j
			}
		}
	}
	return -1
}

// execPosition is where text/template says an execution failed.
var execPosition = regexp.MustCompile(`^template: [^:]*:(\d+):(\d+):`)

// funcError carries an error a template function returned (a missing
// target, a loop, a file the caller could not load) out of text/template,
// which wraps it in a message of its own.
type funcError struct{ err error }

func (e funcError) Error() string { return e.err.Error() }

// execError words a failed execution. Errors the functions returned say
// what they say. text/template's own messages may quote the values a
// template handled ("map has no entry for key ..."), so for a template
// that is or read a secret only the position is kept.
func (r *Renderer) execError(i int, err error, sensitive bool, out *capped) error {
	var fe funcError
	if errors.As(err, &fe) {
		return fe.err
	}
	if out.over {
		return &Error{fmt.Sprintf("template %s renders to more than a %s may hold (it must be under %d bytes): make it smaller", r.describe(i), r.Files[i].Kind, out.max)}
	}
	if sensitive {
		if m := execPosition.FindStringSubmatch(err.Error()); m != nil {
			return &Error{fmt.Sprintf("template %s failed at line %s, column %s (the reason is not shown: the template reads a secret)", r.describe(i), m[1], m[2])}
		}
		return &Error{fmt.Sprintf("template %s failed to render (the reason is not shown: the template reads a secret)", r.describe(i))}
	}
	return &Error{fmt.Sprintf("template %s failed to render: %v", r.describe(i), err)}
}

// capped is the output of one rendering: it fails the write that would
// reach max, so a template cannot build a rendering larger than its cap.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if c.max > 0 && c.buf.Len()+len(p) >= c.max {
		c.over = true
		return 0, errTooLarge
	}
	if c.buf.Len()+len(p) > c.buf.Cap() {
		// Grow by hand so the old buffer, which may hold a secret, is
		// wiped rather than left to the collector.
		next := make([]byte, c.buf.Len(), max(2*c.buf.Cap(), c.buf.Len()+len(p), 512))
		copy(next, c.buf.Bytes())
		clear(c.buf.Bytes())
		c.buf = *bytes.NewBuffer(next)
	}
	return c.buf.Write(p)
}

var errTooLarge = errors.New("rendering too large")

// stubs are the functions for a parse that only checks a template.
var stubs = template.FuncMap{
	"secret": func(string) (string, error) { return "", nil },
	"config": func(string) (string, error) { return "", nil },
	"env":    func(string) (string, error) { return "", nil },
}

// Functions are the functions a template may call, besides text/template's
// own (printf, index, len, ...).
var Functions = []string{"secret", "config", "env", "join"}

// Check parses a template as Render would and applies its limits, so a
// template that can never render is refused when it is stored: an unknown
// function, a syntax error, a range over a number, ranges nested more than
// maxRangeDepth deep.
func Check(text []byte) error {
	_, err := parseTemplate("template", text, stubs)
	return err
}

// maxRangeDepth bounds nested ranges: a template loops over labels at
// most, and nested loops over many labels cost their product.
const maxRangeDepth = 2

func parseTemplate(name string, text []byte, funcs template.FuncMap) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{
		// Swarm's: the first argument is the separator.
		"join": func(s ...string) (string, error) {
			if len(s) == 0 {
				return "", errors.New("join needs a separator")
			}
			return strings.Join(s[1:], s[0]), nil
		},
	}).Funcs(funcs).Parse(string(text))
	if err != nil {
		if strings.Contains(err.Error(), "not defined") {
			return nil, fmt.Errorf("%w (the functions are %s and text/template's own)", err, strings.Join(Functions, ", "))
		}
		return nil, err
	}
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Tree.Root == nil {
			continue
		}
		if err := checkRanges(tt.Tree.Root, 0, map[string]bool{}); err != nil {
			return nil, fmt.Errorf("template: %s: %w", tt.Name(), err)
		}
	}
	return t, nil
}

// checkRanges refuses a range over a number (a template could spin for as
// long as it likes) and ranges nested too deep; numbers lists variables
// set from a number.
func checkRanges(n parse.Node, depth int, numbers map[string]bool) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkRanges(c, depth, numbers); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		notePipe(n.Pipe, numbers)
	case *parse.IfNode:
		return checkBranches(n.List, n.ElseList, depth, numbers)
	case *parse.WithNode:
		return checkBranches(n.List, n.ElseList, depth, numbers)
	case *parse.RangeNode:
		if isNumber(n.Pipe, numbers) {
			return fmt.Errorf("line %d: range over a number is not allowed in a template", n.Line)
		}
		if depth+1 > maxRangeDepth {
			return fmt.Errorf("line %d: ranges nested more than %d deep are not allowed in a template", n.Line, maxRangeDepth)
		}
		return checkBranches(n.List, n.ElseList, depth+1, numbers)
	}
	return nil
}

func checkBranches(list, elseList *parse.ListNode, depth int, numbers map[string]bool) error {
	if err := checkRanges(list, depth, numbers); err != nil {
		return err
	}
	if elseList != nil {
		return checkRanges(elseList, depth, numbers)
	}
	return nil
}

// notePipe records the variables a pipeline sets from a number.
func notePipe(p *parse.PipeNode, numbers map[string]bool) {
	if p == nil {
		return
	}
	num := isNumber(p, numbers)
	for _, v := range p.Decl {
		if len(v.Ident) > 0 {
			numbers[v.Ident[0]] = num
		}
	}
}

// isNumber reports whether a pipeline is a number: a literal, a variable
// set from one, or a parenthesised one.
func isNumber(p *parse.PipeNode, numbers map[string]bool) bool {
	if p == nil || len(p.Cmds) == 0 {
		return false
	}
	last := p.Cmds[len(p.Cmds)-1]
	if len(last.Args) != 1 {
		return false
	}
	switch a := last.Args[0].(type) {
	case *parse.NumberNode:
		return true
	case *parse.VariableNode:
		return len(a.Ident) == 1 && numbers[a.Ident[0]]
	case *parse.PipeNode:
		return isNumber(a, numbers)
	}
	return false
}

// usesContext reports whether any template of t reads its data ("."), so
// a template that reads none renders without asking who the container is.
func usesContext(t *template.Template) bool {
	for _, tt := range t.Templates() {
		if tt.Tree != nil && readsDot(tt.Tree.Root) {
			return true
		}
	}
	return false
}

func readsDot(n parse.Node) bool {
	switch n := n.(type) {
	case nil:
		return false
	case *parse.ListNode:
		if n == nil {
			return false
		}
		return slices.ContainsFunc(n.Nodes, readsDot)
	case *parse.ActionNode:
		return readsDot(n.Pipe)
	case *parse.PipeNode:
		if n == nil {
			return false
		}
		return slices.ContainsFunc(n.Cmds, func(c *parse.CommandNode) bool { return readsDot(c) })
	case *parse.CommandNode:
		return slices.ContainsFunc(n.Args, readsDot)
	case *parse.ChainNode:
		return readsDot(n.Node)
	case *parse.DotNode, *parse.FieldNode:
		return true
	case *parse.VariableNode:
		// $ is the data; other variables hold what was read from it.
		return len(n.Ident) > 0 && n.Ident[0] == "$"
	case *parse.IfNode:
		return readsDot(n.Pipe) || readsDot(n.List) || readsDot(n.ElseList)
	case *parse.WithNode:
		return readsDot(n.Pipe) || readsDot(n.List) || readsDot(n.ElseList)
	case *parse.RangeNode:
		return readsDot(n.Pipe) || readsDot(n.List) || readsDot(n.ElseList)
	case *parse.TemplateNode:
		return readsDot(n.Pipe)
	}
	return false
}

// computedTargets reports whether any call of secret or config in t takes
// something other than a string literal (a variable, a pipeline, another
// call): its target is then not the template's own text.
func computedTargets(t *template.Template) bool {
	found := false
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for k, c := range n.Cmds {
				if len(c.Args) > 0 {
					if id, ok := c.Args[0].(*parse.IdentifierNode); ok && (id.Ident == "secret" || id.Ident == "config") {
						if _, lit := lastArg(c).(*parse.StringNode); !lit || len(c.Args) != 2 || k > 0 {
							found = true
						}
					}
				}
				walk(c)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.TemplateNode:
			walk(n.Pipe)
		}
	}
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			walk(tt.Tree.Root)
		}
	}
	return found
}

func lastArg(c *parse.CommandNode) parse.Node {
	return c.Args[len(c.Args)-1]
}

// ServiceID is the .Service.ID of a compose service: 25 lowercase
// alphanumerics, the shape of a Swarm ID, from its name.
func ServiceID(name string) string {
	sum := sha256.Sum256([]byte("secretd/service\x00" + name))
	s := new(big.Int).SetBytes(sum[:16]).Text(36)
	for len(s) < 25 {
		s = "0" + s
	}
	return s
}
