// Package kafkaio is the Kafka plumbing every part of the enricher shares:
// connection settings (TLS, SASL), kafka-go clients and writers, a fetcher
// that tells a null value from an empty one, whole-topic reads and follows,
// topic sizes and ends, topic creation, and the retry schedule against the
// broker. It knows nothing of profiles, tenants or the group.
package kafkaio

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Config says how to reach the cluster: plain, TLS, SASL PLAIN or SCRAM.
type Config struct {
	// Brokers is the bootstrap list. Required.
	Brokers []string
	// TLS enables TLS; CAFile (PEM) replaces the system roots when set.
	TLS      bool
	CAFile   string
	CertFile string // client certificate (PEM), for mutual TLS
	KeyFile  string
	// SASLMechanism is "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. Default: "" (none).
	SASLMechanism string
	SASLUsername  string
	SASLPassword  string
}

// Validate reports the first invalid setting by name.
func (k Config) Validate() error {
	if len(k.Brokers) == 0 {
		return errors.New("brokers: at least one bootstrap broker is required")
	}
	for _, b := range k.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("brokers: %q is not host:port", b)
		}
	}
	switch k.SASLMechanism {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if k.SASLUsername == "" || k.SASLPassword == "" {
			return fmt.Errorf("sasl-username/sasl-password: required with sasl-mechanism %s", k.SASLMechanism)
		}
	default:
		return fmt.Errorf("sasl-mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.SASLMechanism)
	}
	if (k.CertFile == "") != (k.KeyFile == "") {
		return errors.New("tls-cert-file/tls-key-file: set both or neither")
	}
	if !k.TLS && (k.CAFile != "" || k.CertFile != "") {
		return errors.New("tls: TLS files are set but tls is off")
	}
	return nil
}

func (k Config) tlsConfig() (*tls.Config, error) {
	if !k.TLS {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if k.CAFile != "" {
		pem, err := os.ReadFile(k.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls-ca-file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls-ca-file: %s holds no PEM certificate", k.CAFile)
		}
	}
	if k.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(k.CertFile, k.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls-cert-file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (k Config) mechanism() (sasl.Mechanism, error) {
	switch k.SASLMechanism {
	case "PLAIN":
		return plain.Mechanism{Username: k.SASLUsername, Password: k.SASLPassword}, nil
	case "SCRAM-SHA-256":
		return scram.Mechanism(scram.SHA256, k.SASLUsername, k.SASLPassword)
	case "SCRAM-SHA-512":
		return scram.Mechanism(scram.SHA512, k.SASLUsername, k.SASLPassword)
	}
	return nil, nil
}

// Conn is what kafka-go's readers, groups and writers need.
type Conn struct {
	Brokers   []string
	Dialer    *kafka.Dialer
	Transport *kafka.Transport
}

func (k Config) Connect() (Conn, error) {
	tlsCfg, err := k.tlsConfig()
	if err != nil {
		return Conn{}, err
	}
	mech, err := k.mechanism()
	if err != nil {
		return Conn{}, fmt.Errorf("sasl-mechanism: %w", err)
	}
	return Conn{
		Brokers:   k.Brokers,
		Dialer:    &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: tlsCfg, SASLMechanism: mech},
		Transport: &kafka.Transport{TLS: tlsCfg, SASL: mech, DialTimeout: 10 * time.Second},
	}, nil
}

// KeyedWriter writes keyed records as every writer of these topics must:
// murmur2, like Kafka's own clients (a key lands on one partition, or
// compaction keeps two "latest" records), acknowledged by all in-sync
// replicas.
func (c Conn) KeyedWriter() *kafka.Writer {
	return &kafka.Writer{Addr: kafka.TCP(c.Brokers...), Transport: c.Transport, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
}

func (c Conn) Client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Transport: c.Transport, Timeout: 10 * time.Second}
}

// Close drops the connection's idle connections and stops its metadata
// refresh: a kafka-go Transport keeps both until told.
func (c Conn) Close() { c.Transport.CloseIdleConnections() }

// Client returns a kafka-go client for admin requests (offsets, metadata)
// with these connection settings. Release it with CloseClient.
func (k Config) Client() (*kafka.Client, error) {
	conn, err := k.Connect()
	if err != nil {
		return nil, err
	}
	return conn.Client(), nil
}

// CloseClient releases a client from Kafka.Client: its transport's
// connections and background metadata refresh.
func CloseClient(cl *kafka.Client) {
	if t, ok := cl.Transport.(*kafka.Transport); ok {
		t.CloseIdleConnections()
	}
}
