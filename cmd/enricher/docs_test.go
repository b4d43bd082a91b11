package main

import (
	"bytes"
	"flag"
	"go/parser"
	"go/token"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

var update = flag.Bool("update", false, "rewrite generated documentation (docs/configuration.md) instead of comparing it")

// The configuration reference must say what the flags say: a usage text or a
// default changed in the code without the doc fails here.
func TestConfigurationDocIsCurrent(t *testing.T) {
	doc, err := os.ReadFile(configDocPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := withGeneratedFlags(doc, runSettings())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(configDocPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(doc, want) {
		t.Fatalf("docs/configuration.md is stale: the flags of enricher run render differently (first difference: %s).\n"+
			"Regenerate it with: go test ./cmd/enricher -run TestConfigurationDocIsCurrent -update", firstDifference(doc, want))
	}
}

// The rendering itself refuses a flag that no section shows, and a section
// naming a flag that is gone, so the reference is complete by construction.
func TestConfigurationSectionsCoverEveryFlag(t *testing.T) {
	s := runSettings()
	s.String("not-in-any-section", "", "a flag added without a section")
	err := renderConfiguration(new(bytes.Buffer), s)
	if err == nil || !strings.Contains(err.Error(), "--not-in-any-section is in no section") {
		t.Fatalf("a flag without a section rendered without complaint: %v", err)
	}
	if err := renderConfiguration(new(bytes.Buffer), runSettings()); err != nil {
		t.Fatalf("the flags of enricher run: %v", err)
	}
}

func firstDifference(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + strconv.Itoa(i+1) + ": file has\n  " + x + "\nflags render\n  " + y
		}
	}
	return "none"
}

// markdownLink matches the target of an inline Markdown link.
var markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// pendingDocs are files other branches add; links to them are allowed while
// they are missing. Once such a file exists, the test asks for its removal
// here, so the list cannot hide a broken link for long.
var pendingDocs = map[string]bool{}

// Every relative link in README.md, docs/*.md and tools/faults/README.md must point to a file or
// directory of the repository, and every #anchor to a heading of its file.
func TestDocsLinksResolve(t *testing.T) {
	root := filepath.Join("..", "..")
	files := []string{"README.md", "tools/faults/README.md"}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		rel, _ := filepath.Rel(root, d)
		files = append(files, rel)
	}
	if len(docs) < 6 {
		t.Errorf("docs/ holds %d Markdown documents, want at least 6", len(docs))
	}
	for p := range pendingDocs {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s exists now: remove it from pendingDocs in %s", p, "cmd/enricher/docs_test.go")
		}
	}
	links := 0
	for _, file := range files {
		text, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range markdownLink.FindAllStringSubmatch(inlineCode.ReplaceAllString(withoutFences(text), "``"), -1) {
			target := m[1]
			if u, err := url.Parse(target); err != nil || u.Scheme != "" {
				continue // absolute URLs are not checked offline
			}
			links++
			path, anchor, _ := strings.Cut(target, "#")
			resolved := file
			if path != "" {
				resolved = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(file), path)))
				if strings.HasPrefix(resolved, "../") {
					t.Errorf("%s: link %s leaves the repository", file, target)
					continue
				}
				if _, err := os.Stat(filepath.Join(root, resolved)); err != nil {
					if !pendingDocs[resolved] {
						t.Errorf("%s: link %s: %s does not exist", file, target, resolved)
					}
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(resolved, ".md") {
				target, err := os.ReadFile(filepath.Join(root, resolved))
				if err != nil {
					t.Fatal(err)
				}
				if !headingAnchors(target)[anchor] {
					t.Errorf("%s: link %s: %s has no heading with anchor #%s", file, m[1], resolved, anchor)
				}
			}
		}
	}
	if links == 0 {
		t.Fatal("no relative links found: the pattern no longer matches")
	}
}

// withoutFences blanks fenced code blocks, where brackets are not links and
// '#' starts no heading.
func withoutFences(text []byte) string {
	var out []string
	fenced := false
	for _, line := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			line = ""
		}
		if fenced {
			line = ""
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

var inlineCode = regexp.MustCompile("`[^`]*`")

// headingAnchors are the anchors GitHub derives from a file's headings:
// lower case, letters, digits, '-' and '_' kept, spaces as '-', the rest
// dropped.
func headingAnchors(text []byte) map[string]bool {
	anchors := map[string]bool{}
	for _, line := range strings.Split(withoutFences(text), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}

// citation is a Markdown file named in a comment, with an optional section
// number: "docs/leadspace.md §3".
var citation = regexp.MustCompile(`\b([A-Za-z][\w./-]*\.md)\b(?:\s*§(\d+))?`)

// pendingCitations are files comments still cite that the repository does
// not have, until the merge rewrites the citations (the Leadspace research
// notes are docs/leadspace.md now). Once no comment cites one, the test
// asks for its removal here.
var pendingCitations = map[string]bool{}

// No comment may cite a document the repository lacks, nor a numbered
// section that document does not have.
func TestCommentsCiteDocumentsThatExist(t *testing.T) {
	root := filepath.Join("..", "..")
	cited := map[string]bool{}
	sections := map[string]map[string]bool{} // file -> numbered headings
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, group := range f.Comments {
			for _, m := range citation.FindAllStringSubmatch(group.Text(), -1) {
				name, section := m[1], m[2]
				cited[name] = true
				if pendingCitations[name] {
					continue
				}
				target := filepath.Join(root, name)
				if _, err := os.Stat(target); err != nil {
					// A bare name may be a file beside the code.
					target = filepath.Join(filepath.Dir(path), name)
					if _, err := os.Stat(target); err != nil {
						t.Errorf("%s: a comment cites %s, which the repository does not have", rel, name)
						continue
					}
				}
				if section == "" {
					continue
				}
				if sections[target] == nil {
					sections[target] = numberedHeadings(t, target)
				}
				if !sections[target][section] {
					t.Errorf("%s: a comment cites %s §%s, which has no heading \"## %s. ...\"", rel, name, section, section)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range pendingCitations {
		if !cited[name] {
			t.Errorf("no comment cites %s any more: remove it from pendingCitations in cmd/enricher/docs_test.go", name)
		}
	}
}

var numberedHeading = regexp.MustCompile(`(?m)^#+ (\d+)\. `)

func numberedHeadings(t *testing.T, path string) map[string]bool {
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range numberedHeading.FindAllStringSubmatch(withoutFences(text), -1) {
		out[m[1]] = true
	}
	return out
}
