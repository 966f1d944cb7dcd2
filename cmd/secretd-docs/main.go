// Command secretd-docs writes man pages for every secretd command, from the
// same cobra tree the binary runs, so the pages cannot drift from --help.
// `make docs` runs it; it is a separate program so the secretd binary does
// not carry the man page renderer.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra/doc"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command"
	"github.com/secretd/secretd/cmd/secretd/command/compose"
	"github.com/secretd/secretd/cmd/secretd/command/daemoncmd"
)

func main() {
	dir := flag.String("dir", "docs/man", "directory to write the man pages (section 1) into")
	version := flag.String("version", cli.Version, "version shown in the pages' footer")
	flag.Parse()
	if err := generate(*dir, *version); err != nil {
		fmt.Fprintln(os.Stderr, "secretd-docs:", err)
		os.Exit(1)
	}
}

// generate writes one page per command into dir.
func generate(dir, version string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The whole tree: the pages of the siblings' commands are secretd's.
	c := cli.NewCli(os.Stdin, os.Stdout, os.Stderr)
	root := command.NewRootCommand(c, append(daemoncmd.Commands(c), compose.NewComposeCommand(c))...)
	root.DisableAutoGenTag = true
	// No title: GenManTree gives each page a copy of the header, and an
	// empty title becomes the page's own (SECRETD-SECRET-CREATE), which
	// its SEE ALSO links name as secretd-secret-create(1).
	header := &doc.GenManHeader{Section: "1", Source: "secretd " + version, Manual: "secretd manual"}
	// Reproducible builds set SOURCE_DATE_EPOCH; the pages then carry that
	// date rather than today's.
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		t := time.Unix(n, 0).UTC()
		header.Date = &t
	}
	return doc.GenManTree(root, header, dir)
}
