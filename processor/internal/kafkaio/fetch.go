package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// Fetcher reads one partition in offset order with kafka-go's Fetch
// request, not its Reader: the Reader returns the same nil value for a
// null value (a tombstone) and for a 0-byte one, and the two must not be
// confused — only null deletes a profile. Here a null value is nil and a
// 0-byte value is an empty, non-nil slice.
type Fetcher struct {
	client    *kafka.Client
	topic     string
	partition int
	next      int64 // next offset to return
	// End is the partition's end as the last fetch saw it (its last stable
	// offset: what a read_committed reader can reach), -1 before one.
	End      int64
	maxBytes int // upper bound of a fetch
	ask      int // what the next fetch asks for (see sized)
	maxWait  time.Duration
	batch    []kafka.Message
	buf      []kafka.Message // batch's array, reused by the next fill
	// skipValue, when set, says which records' values are not needed: they
	// come back as an empty, non-nil slice (a null value stays nil), which
	// saves copying a table's worth of values during a restore.
	skipValue func(headers []kafka.Header) bool
}

// emptyValue stands for a value that was not copied.
var emptyValue = []byte{}

func NewFetcher(conn Conn, topic string, partition int, from int64, maxBytes int) *Fetcher {
	cl := conn.Client()
	cl.Timeout = 30 * time.Second
	return &Fetcher{client: cl, topic: topic, partition: partition, next: from, End: -1, maxBytes: maxBytes,
		ask: min(maxBytes, minFetchBytes), maxWait: 250 * time.Millisecond}
}

// kafka-go v0.4.51 decodes every record batch of a fetch response into
// its own 64 KiB pages before the first record is read, so a response's
// memory is its number of batches x 64 KiB, not its size: 4 MiB of a
// topic written one record at a time (the journal, status, a trickling
// upstream) held 3,600 batches and 225 MiB. A fetcher therefore sizes each
// request by the batches it has been seeing, to about fetchBatchBudget
// batches, between minFetchBytes and its maximum.
const (
	fetchBatchBudget = 64
	minFetchBytes    = 16 << 10
)

// sized sets the next request's size from a response of n batches holding
// size bytes of records.
func (f *Fetcher) sized(batches, size int) {
	if batches == 0 {
		return
	}
	f.ask = min(max(size/batches*fetchBatchBudget, minFetchBytes), f.maxBytes)
}

// Fetch returns the next record. It blocks (long polls) until one is
// there or ctx ends; a broker error is returned for the caller to back off
// on, and the next call tries again from the same offset.
func (f *Fetcher) Fetch(ctx context.Context) (kafka.Message, error) {
	for len(f.batch) == 0 {
		if err := ctx.Err(); err != nil {
			return kafka.Message{}, err
		}
		if err := f.fill(ctx); err != nil {
			return kafka.Message{}, err
		}
	}
	m := f.batch[0]
	f.batch[0] = kafka.Message{}
	f.batch = f.batch[1:]
	f.next = m.Offset + 1
	return m, nil
}

// fill fetches the next batch of records.
func (f *Fetcher) fill(ctx context.Context) error {
	res, err := f.client.Fetch(ctx, &kafka.FetchRequest{Topic: f.topic, Partition: f.partition, Offset: f.next,
		MinBytes: 1, MaxBytes: int64(f.ask), MaxWait: f.maxWait, IsolationLevel: kafka.ReadCommitted})
	if err != nil {
		return err
	}
	if res.Error != nil {
		if errors.Is(res.Error, kafka.OffsetOutOfRange) && f.next < res.LogStartOffset {
			f.next = res.LogStartOffset // retention or compaction removed what we wanted
			return nil
		}
		return fmt.Errorf("fetch %s/%d at %d: %w", f.topic, f.partition, f.next, res.Error)
	}
	f.End = res.HighWatermark
	if res.LastStableOffset >= 0 && res.LastStableOffset < f.End {
		f.End = res.LastStableOffset
	}
	f.buf = f.buf[:0] // fetch zeroed what it handed out
	f.batch = f.buf
	if res.Records == nil {
		return nil
	}
	batches, size := 1, 0
	if s, ok := res.Records.(*protocol.RecordStream); ok {
		batches = len(s.Records)
	}
	defer func() { f.sized(batches, size) }()
	for {
		r, err := res.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if len(f.batch) > 0 {
				return nil // keep what was read; the rest comes with the next fetch
			}
			return fmt.Errorf("read %s/%d at %d: %w", f.topic, f.partition, f.next, err)
		}
		size += lenOf(r.Key) + lenOf(r.Value)
		if r.Offset < f.next { // a batch starts before the offset asked for
			closeBytes(r.Key)
			closeBytes(r.Value)
			continue
		}
		m := kafka.Message{Topic: f.topic, Partition: f.partition, Offset: r.Offset, Time: r.Time}
		for _, h := range r.Headers {
			m.Headers = append(m.Headers, kafka.Header(h))
		}
		if r.Value != nil && f.skipValue != nil && f.skipValue(m.Headers) {
			m.Key, err = readBytes(r.Key, nil)
			m.Value = emptyValue
			r.Value.Close()
		} else {
			m.Key, m.Value, err = readKeyValue(r.Key, r.Value)
		}
		if err != nil {
			return fmt.Errorf("read %s/%d at %d: %w", f.topic, f.partition, r.Offset, err)
		}
		f.batch = append(f.batch, m)
		f.buf = f.batch
	}
}

// closeBytes gives a record's key or value back to kafka-go's page pool.
func closeBytes(b protocol.Bytes) {
	if b != nil {
		b.Close()
	}
}

func lenOf(b protocol.Bytes) int {
	if b == nil {
		return 0
	}
	return b.Len()
}

// readKeyValue copies a record's key and value into one allocation (one
// fewer per record); nil stays nil (null), empty stays empty.
func readKeyValue(key, value protocol.Bytes) (k, v []byte, err error) {
	buf := make([]byte, 0, lenOf(key)+lenOf(value))
	if k, err = readBytes(key, buf); err != nil {
		closeBytes(value)
		return nil, nil, err
	}
	v, err = readBytes(value, buf[len(k):len(k)])
	return k, v, err
}

// readBytes copies a record's key or value into buf's room (a new slice
// when buf is nil): nil stays nil (null), empty stays empty.
func readBytes(b protocol.Bytes, buf []byte) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	defer b.Close()
	n := b.Len()
	var out []byte
	if cap(buf) >= n {
		out = buf[:n:n]
	} else {
		out = make([]byte, n)
	}
	_, err := io.ReadFull(b, out)
	return out, err
}
