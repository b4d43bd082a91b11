package admin

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Status is each tenant as the product shows it (what `enricher status
// --json` prints): state and why, enriched X of Y, skipped by reason,
// records spent, last and next refresh, the current Run. With a tenant,
// only that one; a tenant neither topic knows is ErrUnknownTenant.
func (a *Admin) Status(ctx context.Context, tenant string) ([]statusview.Tenant, error) {
	if tenant != "" {
		if err := CheckTenant(tenant); err != nil {
			return nil, err
		}
	}
	table := controlplane.NewTable(func(string, string) (string, error) { return "unresolved", nil })
	if err := controlplane.Load(ctx, a.cfg.Kafka, a.cfg.Topics, a.codec, a.cfg.Auth, table); err != nil {
		return nil, err
	}
	records, err := processor.ReadStatus(ctx, a.cfg.Kafka, a.cfg.Topics.Status, a.codec)
	if err != nil {
		return nil, err
	}
	rows := []statusview.Tenant{}
	for _, v := range statusview.Tenants(records, table.Snapshot(), time.Now()) {
		if tenant == "" || v.TenantID == tenant {
			rows = append(rows, v)
		}
	}
	if tenant != "" && len(rows) == 0 {
		return nil, fail(ErrUnknownTenant, "unknown tenant %s: neither %s nor %s holds anything of it", tenant, a.cfg.Topics.Control, a.cfg.Topics.Status)
	}
	return rows, nil
}

// Enrichments is a tenant's current enrichments: the latest value per key
// of the compacted enriched topic, withdrawn ones (tombstones) and values
// that do not decode left out, by profile id. A tenant the control topic
// never saw is ErrUnknownTenant.
func (a *Admin) Enrichments(ctx context.Context, tenant string) ([]schemas.Enriched, error) {
	if err := CheckTenant(tenant); err != nil {
		return nil, err
	}
	if _, err := a.loadTenant(ctx, tenant); err != nil {
		return nil, err
	}
	latest, err := latestByKey(ctx, a.cfg.Kafka, a.cfg.Topics.Enriched, tenant+"/")
	if err != nil {
		return nil, err
	}
	out := make([]schemas.Enriched, 0, len(latest))
	for _, m := range latest {
		if e, err := a.codec.DecodeEnriched(ctx, m.Value); err == nil {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProfileID < out[j].ProfileID })
	return out, nil
}

// ErrNoEnrichment: the profile has no current enrichment (none yet, or
// withdrawn).
var ErrNoEnrichment = errors.New("no enrichment")

// Profile is one profile's current enrichment: what was sent, the
// firmographics, confidence and lineage.
func (a *Admin) Profile(ctx context.Context, tenant, profile string) (schemas.Enriched, error) {
	if err := CheckTenant(tenant); err != nil {
		return schemas.Enriched{}, err
	}
	if strings.TrimSpace(profile) == "" {
		return schemas.Enriched{}, fail(ErrInvalid, "profile: required")
	}
	key := tenant + "/" + profile
	var latest *kafka.Message
	if err := processor.ReadAll(ctx, a.cfg.Kafka, a.cfg.Topics.Enriched, func(m kafka.Message) {
		if string(m.Key) == key {
			latest = &m
		}
	}); err != nil {
		return schemas.Enriched{}, err
	}
	switch {
	case latest == nil:
		return schemas.Enriched{}, fail(ErrNoEnrichment, "no enrichment for %s on %s", key, a.cfg.Topics.Enriched)
	case latest.Value == nil:
		return schemas.Enriched{}, fail(ErrNoEnrichment, "the enrichment of %s was withdrawn (tombstone at offset %d)", key, latest.Offset)
	}
	return a.codec.DecodeEnriched(ctx, latest.Value)
}

// latestByKey reads a compacted topic to its current end and keeps the
// latest record of every key that starts with prefix; a tombstone removes
// its key, as compaction eventually will.
func latestByKey(ctx context.Context, k processor.Kafka, topic, prefix string) (map[string]kafka.Message, error) {
	latest := map[string]kafka.Message{}
	err := processor.ReadAll(ctx, k, topic, func(m kafka.Message) {
		key := string(m.Key)
		if !strings.HasPrefix(key, prefix) {
			return
		}
		if m.Value == nil {
			delete(latest, key)
			return
		}
		latest[key] = m // one key, one partition: records arrive in offset order
	})
	return latest, readErr(topic, err)
}

// EnrichedStatuses are the statuses of a current enrichment.
var EnrichedStatuses = []string{schemas.StatusEnriched, schemas.StatusNotMatched, schemas.StatusSkipped}

// Tenant is a tenant's control state as the control topic says (verified
// with the configured keys); a tenant it never saw is ErrUnknownTenant.
func (a *Admin) Tenant(ctx context.Context, tenant string) (controlplane.TenantState, error) {
	if err := CheckTenant(tenant); err != nil {
		return controlplane.TenantState{}, err
	}
	info, err := a.loadTenant(ctx, tenant)
	return info.state, err
}
