// Package testkit holds what the processor's packages share in their tests:
// a broker and a schema registry to test against. Only test files import it.
package testkit

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// Brokers are the real broker of KAFKA_BOOTSTRAP, or an in-process one that
// closes with the test. (Addresses, not a kafkaio.Config: kafkaio's own
// tests use it.)
func Brokers(t testing.TB) []string {
	t.Helper()
	if b := os.Getenv("KAFKA_BOOTSTRAP"); b != "" {
		return strings.Split(b, ",")
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster.ListenAddrs()
}

// Codec is a real codec on an in-memory registry, with the given subjects
// (processor.Subjects of the topics under test).
func Codec(t testing.TB, subjects map[schemas.Type]string) *schemas.Codec {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	codec, err := schemas.NewCodec(context.Background(), cl, subjects)
	if err != nil {
		t.Fatal(err)
	}
	return codec
}
