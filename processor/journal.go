package processor

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// journal writes down every bulk Leadspace accepted for this instance's
// records (the journal topic, BulkInFlight), and tombstones it once all its
// answers are published. An instance that dies while a bulk is being
// processed loses the answers it paid for; the instance that takes over its
// partitions reads the journal when they are assigned, and an input it
// redoes at exactly an offset a journaled bulk holds is answered from that
// bulk (leadspace.Program.Resume) instead of being paid for again.
//
// Claims are by partition and offset, not by key: only a redelivery of the
// very input that rode the bulk may take its answer.
type journal struct {
	conn   kafkaio.Conn
	codec  *schemas.Codec
	topics Topics
	log    *zap.Logger
	// pub publishes entries and tombstones; set by Run before the first
	// partition is assigned (nil before: nothing is journaled).
	pub      *kafkaio.Publisher
	disabled atomic.Bool

	mu    sync.Mutex
	bulks map[string]*journaledBulk // path -> its journal entry
}

// journaledBulk is a journaled bulk and how many of its answers are pending.
type journaledBulk struct {
	key  string
	left int
}

func newJournal(conn kafkaio.Conn, codec *schemas.Codec, topics Topics, log *zap.Logger) *journal {
	return &journal{conn: conn, codec: codec, topics: topics, log: log, bulks: map[string]*journaledBulk{}}
}

// BulkAccepted is the leadspace client's hook (leadspace.Config.BulkAccepted):
// it journals the bulk before it is first polled.
// refs are the records' leadspace.Request.Ref: their jobs.
func (p *Processor) BulkAccepted(program, path string, refs []any) {
	if p.journal != nil {
		p.journal.accepted(program, path, refs)
	}
}

// accepted journals a bulk Leadspace accepted (see BulkAccepted).
func (jr *journal) accepted(program, path string, refs []any) {
	if jr.disabled.Load() || jr.pub == nil {
		return
	}
	b := schemas.Bulk{Program: program, Path: path, AcceptedAt: time.Now().UTC().Truncate(time.Millisecond),
		SourceTopic: jr.topics.Profiles}
	key := program + "/" + path[strings.LastIndex(path, "/")+1:]
	jr.mu.Lock()
	entry := &journaledBulk{key: key}
	for _, ref := range refs {
		j, ok := ref.(*job)
		if !ok || j.w.journal != jr {
			continue // not ours (another processor on the same client)
		}
		j.bulk = path
		entry.left++
		b.Inputs = append(b.Inputs, schemas.BulkInput{Partition: int32(j.msg.Partition), Offset: j.msg.Offset})
	}
	if entry.left > 0 {
		jr.bulks[path] = entry
	}
	jr.mu.Unlock()
	if entry.left == 0 {
		return
	}
	value, err := jr.codec.EncodeBulk(b)
	if err != nil {
		jr.log.Warn("bulk not journaled", zap.Error(err))
		return
	}
	jr.pub.Send(context.Background(), []kafka.Message{{Topic: jr.topics.Journal, Partition: -1, Key: []byte(key), Value: value}},
		func(err error) {
			if err != nil {
				jr.log.Debug("bulk not journaled", zap.Error(err))
			}
		})
}

// finished notes that a job's answer was published (or, with published
// false, that it was given up): when a bulk has no answer pending any
// more, its entry goes, with a tombstone if everything was published.
func (jr *journal) finished(j *job, published bool) {
	jr.mu.Lock()
	path := j.bulk
	j.bulk = ""
	entry := jr.bulks[path]
	if path == "" || entry == nil {
		jr.mu.Unlock()
		return
	}
	entry.left--
	if !published {
		entry.key = "" // a successor may still need the bulk: keep it journaled
	}
	done := entry.left <= 0
	if done {
		delete(jr.bulks, path)
	}
	jr.mu.Unlock()
	if done && entry.key != "" && !jr.disabled.Load() {
		jr.pub.Send(context.Background(), []kafka.Message{{Topic: jr.topics.Journal, Partition: -1, Key: []byte(entry.key)}},
			func(error) {})
	}
}

// claims reads the journal: for each owned partition, the offsets whose
// answers ride in a bulk still journaled, and the bulk's path.
func (jr *journal) claims(ctx context.Context, partitions []int) map[int]map[int64]string {
	out := map[int]map[int64]string{}
	if jr.disabled.Load() {
		return out
	}
	owned := map[int]bool{}
	for _, p := range partitions {
		owned[p] = true
	}
	latest := map[string][]byte{}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	spans, err := kafkaio.Spans(rctx, jr.conn, jr.topics.Journal)
	for part := range spans {
		if err == nil {
			_, err = kafkaio.ReadPartition(rctx, jr.conn, jr.topics.Journal, part, 0, func(m kafka.Message) {
				latest[string(m.Key)] = m.Value
			})
		}
	}
	if err != nil {
		jr.log.Warn("journal not read; records of bulks in flight before a crash will be sent again", zap.Error(err))
		return out
	}
	for _, v := range latest {
		if v == nil {
			continue
		}
		b, err := jr.codec.DecodeBulk(ctx, v)
		if err != nil || b.SourceTopic != jr.topics.Profiles {
			continue
		}
		for _, in := range b.Inputs {
			if p := int(in.Partition); owned[p] {
				if out[p] == nil {
					out[p] = map[int64]string{}
				}
				out[p][in.Offset] = b.Path
			}
		}
	}
	return out
}
