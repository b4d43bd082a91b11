package processor

import (
	"context"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// published remembers, per tenant, which keys hold an enrichment on the
// enriched topic and since when. Removing a tenant with purge withdraws them.
type published struct {
	mu   sync.Mutex
	keys map[string]map[string]time.Time // tenant -> key -> enriched_at
}

func newPublished() *published { return &published{keys: map[string]map[string]time.Time{}} }

func (p *published) put(tenant, key string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.keys[tenant] == nil {
		p.keys[tenant] = map[string]time.Time{}
	}
	p.keys[tenant][key] = at
}

func (p *published) remove(key string) {
	tenant, _, ok := splitKey([]byte(key))
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.keys[tenant], key)
}

// before lists a tenant's keys enriched before t.
func (p *published) before(tenant string, t time.Time) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for key, at := range p.keys[tenant] {
		if at.Before(t) {
			out = append(out, key)
		}
	}
	return out
}

// purger queues removals with purge until the tables are loaded, then
// tombstones what each removal covers: enrichments published before it.
// Running it again (a restart reloads the removal) finds nothing left.
type purger struct {
	mu      sync.Mutex
	pending []schemas.Control
	wake    chan struct{}
}

func newPurger() *purger { return &purger{wake: make(chan struct{}, 1)} }

func (q *purger) add(ev schemas.Control) {
	q.mu.Lock()
	q.pending = append(q.pending, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *purger) take() []schemas.Control {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.pending
	q.pending = nil
	return out
}

// runPurges withdraws removed tenants' enrichments until ctx ends.
func (p *Processor) runPurges(ctx context.Context) {
	for {
		for _, ev := range p.purges.take() {
			keys := p.published.before(ev.TenantID, ev.IssuedAt)
			msgs := make([]kafka.Message, len(keys))
			for i, k := range keys {
				msgs[i] = kafka.Message{Topic: p.cfg.Topics.Enriched, Key: []byte(k), Value: nil}
			}
			if err := p.pub.publish(ctx, msgs); err != nil {
				return
			}
			for _, k := range keys {
				p.published.remove(k)
			}
			p.log.Info("enrichment removed with purge: published enrichments withdrawn", zap.String("tenant", ev.TenantID), zap.Int("tombstones", len(keys)))
		}
		select {
		case <-ctx.Done():
			return
		case <-p.purges.wake:
		}
	}
}
