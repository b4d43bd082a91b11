package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// settings is a flag set whose every flag can also come from the environment
// as ENRICHER_<FLAG_NAME>: containers configure by environment, people by
// flags, and a flag given on the command line wins.
type settings struct {
	*flag.FlagSet
}

func newSettings(command string) *settings {
	fs := flag.NewFlagSet("enricher "+command, flag.ContinueOnError)
	s := &settings{fs}
	fs.Usage = func() { s.usage(fs.Output()) }
	return s
}

// EnvName is the environment variable that sets a flag.
func EnvName(flagName string) string {
	return "ENRICHER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse reads the command line, then fills unset flags from the environment.
func (s *settings) parse(args []string) error {
	if err := s.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	s.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	s.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if e := s.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", EnvName(f.Name), e)
			}
		}
	})
	return err
}

// names lists every flag, for the compose check and the docs.
func (s *settings) names() []string {
	var out []string
	s.VisitAll(func(f *flag.Flag) { out = append(out, f.Name) })
	sort.Strings(out)
	return out
}

func (s *settings) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage of %s:\n", s.Name())
	s.VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  --%s (env %s, default %s)\n      %s\n", f.Name, EnvName(f.Name), def, f.Usage)
	})
}

// list is a comma-separated flag value.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }
func (l *list) Set(v string) error {
	*l = nil
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

func positive(name string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s: must be positive, got %s", name, d)
	}
	return nil
}
