// Command enricher keeps B2B company profiles enriched with Leadspace
// firmographics through Kafka. `enricher run` is the service; `enricher dev`
// runs everything embedded on one machine.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

var commands = []struct {
	name, help string
	run        func(args []string) error
}{
	{"run", "run the enrichment service against a Kafka cluster", cmdRun},
	{"dev", "run everything embedded (broker, registry, Leadspace simulator) with demo data", cmdDev},
	{"connect", "connect a tenant to Leadspace (verifies the token with a test call)", cmdConnect},
	{"consent", "record that a tenant's admin gave or withdrew consent ('consent give|withdraw')", cmdConsent},
	{"map", "set which profile attributes are sent: company name, website, location", cmdMap},
	{"remove", "remove a tenant's enrichment; --purge also withdraws what was published", cmdRemove},
	{"keys", "generate the key pair for sealed tokens ('keys generate')", cmdKeys},
	{"control", "show every tenant's connection, consent and mapping ('control show'); tokens are never shown", cmdControl},
	{"status", "show each tenant's enrichment status: state, enriched X of Y, skipped, failed, credits", cmdStatus},
	{"profile", "show one profile's enriched data", cmdProfile},
	{"topics", "create the topics with their partitions and cleanup policies ('topics create')", cmdTopics},
	{"seed", "write a demo tenant's connection, consent and mapping, and demo profiles", cmdSeed},
	{"registry", "serve an in-memory development schema registry (Confluent API; not for production)", cmdRegistry},
}

func usage() {
	fmt.Fprintln(os.Stderr, "Usage: enricher <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", c.name, c.help)
	}
	fmt.Fprintln(os.Stderr, "\nEvery flag can also be set as ENRICHER_<FLAG> (e.g. --schema-registry-url as ENRICHER_SCHEMA_REGISTRY_URL).\nRun 'enricher <command> -h' for its flags.")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	for _, c := range commands {
		if c.name == os.Args[1] {
			err := c.run(os.Args[2:])
			switch {
			case err == nil:
				os.Exit(0)
			case errors.Is(err, flag.ErrHelp):
				os.Exit(0)
			default:
				fmt.Fprintln(os.Stderr, "enricher "+c.name+": "+err.Error())
				os.Exit(1)
			}
		}
	}
	usage()
	os.Exit(2)
}
