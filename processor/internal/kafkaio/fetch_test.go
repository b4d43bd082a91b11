package kafkaio

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor/internal/testkit"
)

// kafka-go holds 64 KiB per record batch of a fetch response, so a topic
// written one record at a time must be fetched a few batches at a time,
// while a topic of big batches is still fetched in big responses.
func TestAFetchHoldsAFewBatchesOfATopicWrittenOneRecordAtATime(t *testing.T) {
	k := Config{Brokers: testkit.Brokers(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := k.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	base := "fetch-test-" + time.Now().Format("150405.000000")
	write := func(topic string, n, perBatch int) {
		if _, err := conn.Client().CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
			{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}}}); err != nil {
			t.Fatal(err)
		}
		w := &kafka.Writer{Addr: kafka.TCP(k.Brokers...), Topic: topic, Transport: conn.Transport,
			BatchSize: perBatch, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
		defer w.Close()
		for i := 0; i < n; i += perBatch {
			msgs := make([]kafka.Message, 0, perBatch)
			for j := i; j < i+perBatch && j < n; j++ {
				msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("k-%d", j)), Value: make([]byte, 200)})
			}
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				t.Fatal(err)
			}
		}
	}
	// read fetches the whole topic and returns the most records (so, for
	// single-record batches, batches) one response held after the first.
	read := func(topic string, n int) (most int) {
		f := NewFetcher(conn, topic, 0, 0, 4<<20)
		for i := 0; i < n; {
			if err := f.fill(ctx); err != nil {
				t.Fatal(err)
			}
			for _, m := range f.batch {
				if m.Offset != int64(i) || string(m.Key) != fmt.Sprintf("k-%d", i) {
					t.Fatalf("record %d: offset %d key %q", i, m.Offset, m.Key)
				}
				i++
			}
			f.next = int64(i)
			most = max(most, len(f.batch))
		}
		return most
	}

	write(base+"-single", 1500, 1)
	if most := read(base+"-single", 1500); most > 2*fetchBatchBudget {
		t.Fatalf("a response held %d single-record batches; at most about %d wanted", most, fetchBatchBudget)
	}
	write(base+"-bulk", 20000, 1000)
	if most := read(base+"-bulk", 20000); most < 5000 {
		t.Fatalf("responses of 1,000-record batches held at most %d records: big batches must be fetched in big responses", most)
	}
}

// A record's key and value share one allocation, and still come back as
// written: a null stays nil (a tombstone's value, a record without a key),
// an empty one stays empty, and neither runs into the other.
func TestFetchedKeysAndValuesKeepNullEmptyAndBytes(t *testing.T) {
	k := Config{Brokers: testkit.Brokers(t)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := k.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	topic := "fetch-kv-" + time.Now().Format("150405.000000")
	if _, err := conn.Client().CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}}}); err != nil {
		t.Fatal(err)
	}
	want := []kafka.Message{
		{Key: []byte("tenant/p-1"), Value: []byte("value")},
		{Key: []byte("tenant/p-2"), Value: nil},
		{Key: []byte("tenant/p-3"), Value: []byte{}},
		{Key: nil, Value: []byte("keyless")},
		{Key: []byte{}, Value: []byte("empty key")},
	}
	w := &kafka.Writer{Addr: kafka.TCP(k.Brokers...), Topic: topic, Transport: conn.Transport, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	if err := w.WriteMessages(ctx, want...); err != nil {
		t.Fatal(err)
	}
	f := NewFetcher(conn, topic, 0, 0, 1<<20)
	for i, wm := range want {
		m, err := f.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if (m.Key == nil) != (wm.Key == nil) || string(m.Key) != string(wm.Key) ||
			(m.Value == nil) != (wm.Value == nil) || string(m.Value) != string(wm.Value) {
			t.Fatalf("record %d: key %q (nil %v) value %q (nil %v), want key %q (nil %v) value %q (nil %v)", i,
				m.Key, m.Key == nil, m.Value, m.Value == nil, wm.Key, wm.Key == nil, wm.Value, wm.Value == nil)
		}
		if len(m.Key) > 0 && cap(m.Key) != len(m.Key) {
			t.Fatalf("record %d: the key's capacity %d runs into the value", i, cap(m.Key))
		}
	}
}
