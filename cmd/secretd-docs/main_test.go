package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenerate renders the man pages of the whole command tree, as
// `make docs` does, and checks each command got its page with examples.
func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if err := generate(dir, "v9.9.9"); err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"secretd.1", "secretd-daemon.1", "secretd-run.1", "secretd-secret-create.1",
		"secretd-status.1", "secretd-completion-bash.1", "secretd-container-update.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Errorf("no page %s: %v", page, err)
			continue
		}
		s := string(b)
		if !strings.Contains(s, "EXAMPLE") || !strings.Contains(s, "v9.9.9") || !strings.Contains(s, "Nov 2023") {
			t.Errorf("%s lacks its examples, version or fixed date:\n%s", page, s)
		}
	}
	// Each page is titled for its command and links its parent and
	// children, as docker's man pages do.
	for page, want := range map[string][]string{
		"secretd.1":                  {`.TH "SECRETD" "1"`, `\fBsecretd-secret(1)\fP`, `\fBsecretd-run(1)\fP`},
		"secretd-secret.1":           {`.TH "SECRETD-SECRET" "1"`, `\fBsecretd(1)\fP`, `\fBsecretd-secret-create(1)\fP`, `\fBsecretd-secret-rm(1)\fP`},
		"secretd-secret-create.1":    {`.TH "SECRETD-SECRET-CREATE" "1"`, `.SH SEE ALSO`, `\fBsecretd-secret(1)\fP`},
		"secretd-container-update.1": {`.TH "SECRETD-CONTAINER-UPDATE" "1"`, `\fBsecretd-container(1)\fP`},
	} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Errorf("no page %s: %v", page, err)
			continue
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %s:\n%s", page, w, b)
			}
		}
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	if len(pages) < 20 {
		t.Errorf("only %d pages: %v", len(pages), pages)
	}
}
