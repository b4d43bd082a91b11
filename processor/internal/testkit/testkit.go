// Package testkit holds what the processor's packages share in their tests:
// a broker to test against. Only test files import it.
package testkit

import (
	"os"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
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
