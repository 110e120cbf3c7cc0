package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

// trackedFiles are the repository's files as git knows them, new ones
// not yet committed included.
func trackedFiles(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		testutil.Missing(t, "git ls-files: %v", err)
	}
	var files []string
	for _, f := range strings.Split(string(out), "\x00") {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err == nil { // deleted in the work tree
			files = append(files, f)
		}
	}
	return files
}

// outsideCitation matches citations of documents a reader of the
// repository does not have (the old gateway reference, the stability-guide notes).
// Built from pieces so that this file does not match itself.
var outsideCitation = regexp.MustCompile(`(?i)` + strings.Join([]string{
	`gateway` + `\.md`,
	`stability` + ` guide`,
	`shared` + `/reference`,
	`\bthe ` + `guide\b`,
}, "|"))

// TestNoOutsideCitations: what the code relies on about the gateways is in
// docs/, and nothing outside docs/ cites a document that is not in the
// repository.
func TestNoOutsideCitations(t *testing.T) {
	for _, f := range trackedFiles(t) {
		if strings.HasPrefix(f, "docs/") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil || bytes.IndexByte(b, 0) >= 0 { // binary
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := outsideCitation.FindString(line); m != "" {
				t.Errorf("%s:%d cites %q, a document outside the repository: point at docs/ (docs/README.md maps the old citations)", f, i+1, m)
			}
		}
	}
}

// docsLink matches docs/<file>.md#<anchor> anywhere, and <file>.md#<anchor>
// inside docs/.
var (
	docsLink     = regexp.MustCompile(`docs/([A-Za-z0-9_.-]+\.md)#([A-Za-z0-9_-]+)`)
	relativeLink = regexp.MustCompile(`\]\(([A-Za-z0-9_.-]+\.md)#([A-Za-z0-9_-]+)\)`)
	heading      = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*#*\s*$`)
)

// anchors are the GitHub-style anchors of a Markdown file's headings.
func anchors(b []byte) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	inFence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		m := heading.FindStringSubmatch(line)
		if inFence || m == nil {
			continue
		}
		a := slug(m[1])
		if n := seen[a]; n > 0 {
			out[a+"-"+strconv.Itoa(n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// slug is GitHub's: lower case, punctuation dropped, spaces to hyphens.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

func TestSlug(t *testing.T) {
	for h, want := range map[string]string{
		"Where real gateways contradict it":  "where-real-gateways-contradict-it",
		"openclaw boot UNAVAILABLE":          "openclaw-boot-unavailable",
		"`locks` subcommand":                 "locks-subcommand",
		"Limits and hardening":               "limits-and-hardening",
		"Restarts, in-process ones included": "restarts-in-process-ones-included",
	} {
		if got := slug(h); got != want {
			t.Errorf("slug(%q) = %q, want %q", h, got, want)
		}
	}
}

// TestDocsAnchorsExist: every docs/<file>.md#anchor the repository cites
// names a heading that exists.
func TestDocsAnchorsExist(t *testing.T) {
	cache := map[string]map[string]bool{}
	lookup := func(file string) map[string]bool {
		if a, ok := cache[file]; ok {
			return a
		}
		b, err := os.ReadFile(filepath.Join("docs", file))
		if err != nil {
			cache[file] = nil
			return nil
		}
		cache[file] = anchors(b)
		return cache[file]
	}
	checked := 0
	for _, f := range trackedFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil || bytes.IndexByte(b, 0) >= 0 {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			links := docsLink.FindAllStringSubmatch(line, -1)
			if strings.HasPrefix(f, "docs/") {
				links = append(links, relativeLink.FindAllStringSubmatch(line, -1)...)
			}
			for _, m := range links {
				checked++
				a := lookup(m[1])
				switch {
				case a == nil:
					t.Errorf("%s:%d cites docs/%s, which does not exist", f, i+1, m[1])
				case !a[m[2]]:
					t.Errorf("%s:%d cites docs/%s#%s: no such heading", f, i+1, m[1], m[2])
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no docs/ citation found: the pattern is wrong")
	}
}
