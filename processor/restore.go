package processor

import (
	"context"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/processor/internal/table"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// restorer rebuilds a partition's table from what the enricher already
// published for it: enriched-company (the standing answers, and tombstones
// of deleted profiles) and the dead letter topic (inputs that failed), both
// co-partitioned with the input. It remembers how far it read, so a
// partition that comes back to this instance after a rebalance is caught up
// from there instead of read again.
type restorer struct {
	conn      kafkaio.Conn
	codec     *schemas.Codec
	topics    Topics
	names     *table.Interner
	partition int

	enrichedNext, deadNext int64 // next offsets to read
}

// purgeRule says whether a tenant's enrichments published before a time
// must be withdrawn (a removal with purge).
type purgeRule func(tenant string) (before time.Time, ok bool)

// restored is what a restore pass found besides the table itself.
type restored struct {
	records int      // records read from both topics
	purge   []string // keys whose standing answers a removal with purge withdraws
}

// catchUp reads both topics from where the last pass stopped to their
// current ends, folding every record into t.
func (r *restorer) catchUp(ctx context.Context, t *table.Table, purge purgeRule) (restored, error) {
	var out restored
	// Keys of tenants with a purge in effect, with their answer time: the
	// table keeps only hashes, but tombstones need the key.
	purgeKeys := map[string]int64{}
	// Tombstones seen in this pass, by key hash and source offset: a dead
	// letter older than the deletion must not bring the key back.
	deleted := map[uint64]int64{}
	// Records written with the state header need no value; older ones are
	// decoded.
	noState := func(h []kafka.Header) bool { _, ok := table.HeaderOf(h, table.HeaderState); return !ok }
	enriched, err := kafkaio.ReadHeaders(ctx, r.conn, r.topics.Enriched, r.partition, r.enrichedNext, noState, func(m kafka.Message) {
		out.records++
		key := string(m.Key)
		tenant, _, ok := splitKey(m.Key)
		if !ok {
			return
		}
		st, ok := r.stateOf(m)
		if !ok {
			return
		}
		if m.Value == nil {
			t.Remove(key)
			h, _ := table.KeyOf(key)
			deleted[h] = st.Offset
			delete(purgeKeys, key)
			return
		}
		t.Put(key, table.Entry{Fingerprint: st.Fingerprint, Offset: st.Offset, Version: st.Version, AnsweredAt: st.AnsweredAt,
			Tenant: r.names.ID(tenant), Reason: r.names.ID(st.Reason), Outcome: st.Outcome})
		if purge != nil {
			if before, ok := purge(tenant); ok && st.AnsweredAt < before.UnixMilli() {
				purgeKeys[key] = st.AnsweredAt
			} else {
				delete(purgeKeys, key)
			}
		}
	})
	if err != nil {
		return out, err
	}
	r.enrichedNext = enriched
	never := func([]kafka.Header) bool { return false }
	dead, err := kafkaio.ReadHeaders(ctx, r.conn, r.topics.DeadLetters, r.partition, r.deadNext, never, func(m kafka.Message) {
		out.records++
		if v, _ := table.Header(m, HeaderErrTopic); string(v) != r.topics.Profiles {
			return
		}
		offset, ok := table.HeaderInt(m, HeaderErrOffset)
		if !ok {
			return
		}
		tenant, _, ok := splitKey(m.Key)
		if !ok {
			return
		}
		key := string(m.Key)
		h, _ := table.KeyOf(key)
		if at, gone := deleted[h]; gone && at >= offset {
			return
		}
		s, held := t.Get(key)
		if held && s.Offset >= offset {
			return
		}
		if !held {
			s = table.Entry{Tenant: r.names.ID(tenant)}
		}
		s.Offset, s.Failed = offset, true
		t.Put(key, s)
	})
	if err != nil {
		return out, err
	}
	r.deadNext = dead
	for key := range purgeKeys {
		out.purge = append(out.purge, key)
	}
	return out, nil
}

// stateOf reads a record's state header, or decodes the Avro value of a
// record written before the header existed.
func (r *restorer) stateOf(m kafka.Message) (table.State, bool) {
	if b, ok := table.Header(m, table.HeaderState); ok {
		st, err := table.DecodeState(b)
		return st, err == nil
	}
	if m.Value == nil {
		return table.State{Offset: -1}, true
	}
	e, err := r.codec.DecodeEnriched(context.Background(), m.Value)
	if err != nil {
		return table.State{}, false
	}
	st := table.State{Fingerprint: fingerprintBits(e.InputFingerprint), Offset: e.Lineage.SourceOffset,
		Version: e.Lineage.ProfileVersion, AnsweredAt: e.EnrichedAt.UnixMilli(), Reason: e.SkipReason}
	switch e.Status {
	case schemas.StatusEnriched:
		st.Outcome = table.OutcomeEnriched
	case schemas.StatusNotMatched:
		st.Outcome = table.OutcomeNotMatched
	case schemas.StatusSkipped:
		st.Outcome = table.OutcomeSkipped
	default:
		return table.State{}, false
	}
	return st, true
}

// fingerprintBits keeps the first 64 bits of a hex SHA-256 fingerprint:
// equal fingerprints must match, and 64 bits make a false match of two
// different inputs for one key practically impossible.
func fingerprintBits(fp string) uint64 {
	if len(fp) < 16 {
		return 0
	}
	v, err := strconv.ParseUint(fp[:16], 16, 64) // no allocation, either case of hex digit
	if err != nil {
		return 0
	}
	return v
}
