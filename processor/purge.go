package processor

import (
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/processor/internal/table"
)

// removals are the tenants whose enrichment was removed with purge: every
// enrichment they had published before the removal is withdrawn
// (tombstoned) on each partition, by whoever owns it. Purging again (after
// a restart, or when a partition moves) finds nothing left to withdraw.
type removals struct{ control *controlplane.Table }

// before says whether a tenant's enrichments published before a time must
// go.
func (r *removals) before(tenant string) (time.Time, bool) {
	for _, rm := range r.control.Removals() {
		if rm.Tenant == tenant && rm.Purge {
			return rm.At, true
		}
	}
	return time.Time{}, false
}

// snapshot is the purges in effect and a version that changes with them.
func (r *removals) snapshot() (map[string]time.Time, string) {
	out := map[string]time.Time{}
	var version []string
	for _, rm := range r.control.Removals() {
		if rm.Purge {
			out[rm.Tenant] = rm.At
			version = append(version, rm.Tenant+"@"+rm.At.String())
		}
	}
	sort.Strings(version)
	return out, strings.Join(version, ",")
}

// checkPurges withdraws, on this partition, what removals with purge that
// arrived since the partition was restored cover.
func (w *partitionWorker) checkPurges(seen *string) {
	rules, version := w.purges.snapshot()
	if version == *seen {
		return
	}
	*seen = version
	var keys []string
	latest := map[string]int64{} // key -> answer time of its standing record, -1 when deleted
	_, err := kafkaio.ReadPartition(w.fetchCtx, w.conn, w.topics.Enriched, w.id, 0, func(m kafka.Message) {
		tenant, _, ok := splitKey(m.Key)
		if _, purge := rules[tenant]; !ok || !purge {
			return
		}
		if m.Value == nil {
			latest[string(m.Key)] = -1
			return
		}
		if b, ok := table.Header(m, table.HeaderState); ok {
			if st, err := table.DecodeState(b); err == nil {
				latest[string(m.Key)] = st.AnsweredAt
				return
			}
		}
		if st, ok := (&restorer{codec: w.codec}).stateOf(m); ok {
			latest[string(m.Key)] = st.AnsweredAt
		}
	})
	if err != nil {
		return
	}
	for key, at := range latest {
		tenant, _, _ := cutKey(key)
		if at >= 0 && at < rules[tenant].UnixMilli() {
			keys = append(keys, key)
		}
	}
	if len(keys) > 0 {
		w.purge(keys)
	}
}
