// Command enricher keeps B2B company profiles enriched with Leadspace
// firmographics through Kafka. `enricher run` is the service; `enricher dev`
// runs everything embedded on one machine.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
)

var commands = []struct {
	name, help string
	// sub lists the subcommands, for commands that need one ("give|withdraw").
	sub string
	run func(args []string) error
}{
	{"run", "run the enrichment service against a Kafka cluster", "", cmdRun},
	{"dev", "run everything embedded (broker, registry, Leadspace simulator) with demo data", "", cmdDev},
	{"connect", "connect a tenant to Leadspace (verifies the token with a test call)", "", cmdConnect},
	{"consent", "record that a tenant's admin gave or withdrew consent ('consent give|withdraw')", "give|withdraw", cmdConsent},
	{"map", "set which profile attributes are sent: company name, website, location", "", cmdMap},
	{"remove", "remove a tenant's enrichment; --purge also withdraws what was published", "", cmdRemove},
	{"keys", "generate the key pair for sealed tokens ('keys generate')", "generate", cmdKeys},
	{"control", "show every tenant's connection, consent and mapping ('control show'); tokens are never shown", "show", cmdControl},
	{"refresh", "run a whole tenant now (a Run), with a credits preview (--dry-run), progress (--wait) and 'refresh cancel'", "", cmdRefresh},
	{"status", "show each tenant's state, enriched X of Y, skipped and why, failed, records spent, last refresh and the current Run", "", cmdStatus},
	{"show", "list a tenant's current enrichments as a table, JSON or CSV", "", cmdShow},
	{"tail", "follow new enrichments and dead letters live, decoded", "", cmdTail},
	{"profile", "show one profile's enriched data", "", cmdProfile},
	{"dlq", "list dead letters with reason, stage, age and replay count ('dlq list')", "list", cmdDLQ},
	{"replay", "put dead letters back on their source topic (filters, --dry-run, a loop guard)", "", cmdReplay},
	{"topics", "create the topics with their partitions and cleanup policies ('topics create')", "create", cmdTopics},
	{"seed", "write a demo tenant's connection, consent and mapping, and demo profiles", "", cmdSeed},
	{"registry", "serve an in-memory development schema registry (Confluent API; not for production)", "", cmdRegistry},
	{"console", "serve the web console for tenant admins and operators (OpenID Connect sign-in; holds the admin signing key)", "", cmdConsole},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: enricher <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.help)
	}
	fmt.Fprintln(w, "\nEvery flag can also be set as ENRICHER_<FLAG> (e.g. --schema-registry-url as ENRICHER_SCHEMA_REGISTRY_URL).\nRun 'enricher <command> -h' for its flags.")
	fmt.Fprintln(w, "\nExit status: 0 done, 1 failed or refused, 2 bad usage (unknown command, bad flag), 3 replay refused some records (loop guard).")
}

// Exit statuses beyond 0 and 1.
const (
	exitUsage   = 2
	exitPartial = 3
)

// usageError is bad input on the command line: a flag the command does not
// have, a value it cannot take. It exits 2, like an unknown command.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func badUsage(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError carries an exit status other than 1 for a command that ran.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// parseFlags parses a command's flags so that a bad flag is one line (the
// flag package would add the whole usage) and exits 2; -h still prints the
// flags and exits 0.
func parseFlags(s *settings, args []string) error {
	if !slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "--help" || a == "-help" }) {
		s.SetOutput(io.Discard)
	}
	if err := s.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{fmt.Errorf("%w (see 'enricher %s -h')", err, s.Name()[len("enricher "):])}
	}
	if s.NArg() > 0 {
		return badUsage("unexpected argument %q (see 'enricher %s -h')", s.Arg(0), s.Name()[len("enricher "):])
	}
	return nil
}

func main() { os.Exit(dispatch(os.Args[1:])) }

// dispatch runs one command and returns the exit status.
func dispatch(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return exitUsage
	}
	if isHelp(args[0]) {
		usage(os.Stdout)
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		// Commands with subcommands answer -h themselves only after the
		// subcommand; before it, say what the subcommands are.
		if c.sub != "" && len(args) > 1 && isHelp(args[1]) {
			fmt.Printf("Usage: enricher %s %s [flags]\n  %s\nRun 'enricher %s %s -h' for the flags.\n", c.name, c.sub, c.help, c.name, c.sub)
			return 0
		}
		err := c.run(args[1:])
		var ue usageError
		var ee exitError
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintln(os.Stderr, "enricher "+c.name+": "+err.Error())
			return exitUsage
		case errors.As(err, &ee):
			fmt.Fprintln(os.Stderr, "enricher "+c.name+": "+err.Error())
			return ee.code
		default:
			fmt.Fprintln(os.Stderr, "enricher "+c.name+": "+err.Error())
			return 1
		}
	}
	fmt.Fprintf(os.Stderr, "enricher: unknown command %s (run 'enricher --help' for the commands)\n", args[0])
	return exitUsage
}
