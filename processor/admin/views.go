package admin

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Views keeps what the admin reads in memory, caught up from the topics
// and updated as they change: the tenants' control state, the status
// records, each tenant's current enrichments (latest per key of the
// enriched topic, as small rows ordered by profile id) and the dead
// letters. A long-lived process (the console) answers a page from it
// without reading a topic per request; the CLI reads once per command
// instead. It is safe for concurrent use.
type Views struct {
	a *Admin

	control *controlplane.Table // safe for concurrent use itself

	mu          sync.RWMutex
	refresh     map[string]*schemas.Control // tenant -> latest refresh event
	status      map[string]schemas.Status   // status key -> latest record
	enriched    map[string]*tenantRows
	letters     map[string]*DeadLetter // dead letter id -> letter
	order       []*DeadLetter          // oldest failure first
	sorted      bool                   // order is sorted
	receipts    map[string]Receipt     // receipts seen before their letters
	undecodable int
	version     uint64 // counts applied records, for callers that cache
}

// Follow reads the control, status, enriched and dead letter topics and
// returns once it has caught up with all four; the views then follow the
// topics until ctx ends. The status topic's control records are read
// first, as the service restores them, so an event compaction brought
// back cannot win.
func (a *Admin) Follow(ctx context.Context) (*Views, error) {
	v := &Views{a: a, control: controlplane.NewTable(func(string, string) (string, error) { return "unresolved", nil }),
		refresh: map[string]*schemas.Control{}, status: map[string]schemas.Status{}, enriched: map[string]*tenantRows{},
		letters: map[string]*DeadLetter{}, receipts: map[string]Receipt{}}
	applied, err := controlplane.ReadApplied(ctx, a.cfg.Kafka, a.cfg.Topics.Status, a.codec)
	if err != nil {
		return nil, err
	}
	restore := make([]schemas.Status, 0, len(applied))
	for _, s := range applied {
		restore = append(restore, s)
	}
	v.control.Restore(restore)
	topics := []struct {
		name  string
		apply func(kafka.Message)
	}{
		{a.cfg.Topics.Control, v.applyControl},
		{a.cfg.Topics.Status, v.applyStatus},
		{a.cfg.Topics.Enriched, v.applyEnriched},
		{a.cfg.Topics.DeadLetters, v.applyDead},
	}
	caught := make(chan struct{}, len(topics))
	errs := make(chan error, len(topics))
	for _, t := range topics {
		go func() {
			once := sync.OnceFunc(func() { caught <- struct{}{} })
			err := processor.Follow(ctx, a.cfg.Kafka, t.name, t.apply, once)
			if ctx.Err() == nil {
				a.log.Warn("view stopped following its topic", zap.String("topic", t.name), zap.Error(err))
				errs <- fmt.Errorf("follow %s: %w", t.name, err)
			}
		}()
	}
	for range topics {
		select {
		case <-caught:
		case err := <-errs:
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return v, nil
}

func (v *Views) applyControl(m kafka.Message) {
	ev, err := v.control.ApplyRecord(v.a.codec, v.a.cfg.Auth, m)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.version++
	if err == nil && ev != nil && ev.Refresh != nil {
		if r := v.refresh[ev.TenantID]; r == nil || !ev.IssuedAt.Before(r.IssuedAt) {
			v.refresh[ev.TenantID] = ev
		}
	}
}

func (v *Views) applyStatus(m kafka.Message) {
	var s schemas.Status
	var err error
	if m.Value != nil {
		if s, err = v.a.codec.DecodeStatus(context.Background(), m.Value); err != nil {
			return
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.version++
	if m.Value == nil {
		delete(v.status, string(m.Key))
		return
	}
	v.status[string(m.Key)] = s
}

func (v *Views) applyEnriched(m kafka.Message) {
	tenant, profile, ok := strings.Cut(string(m.Key), "/")
	if !ok {
		return
	}
	var row *EnrichmentRow
	if m.Value != nil {
		e, err := v.a.codec.DecodeEnriched(context.Background(), m.Value)
		if err != nil || e.TenantID != tenant || e.ProfileID != profile {
			return
		}
		row = rowOf(e, m.Value)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.version++
	t := v.enriched[tenant]
	if t == nil {
		if row == nil {
			return
		}
		t = &tenantRows{byID: map[string]*EnrichmentRow{}, counts: map[string]int{}}
		v.enriched[tenant] = t
	}
	t.put(profile, row)
}

func (v *Views) applyDead(m kafka.Message) {
	if m.Value == nil {
		r, id, ok := receiptOf(m)
		if !ok {
			return
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.version++
		if e := v.letters[id]; e != nil {
			e.Receipt = &r
		} else {
			v.receipts[id] = r
		}
		return
	}
	d, err := v.a.codec.DecodeDead(context.Background(), m.Value)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.version++
	switch {
	case err != nil:
		v.undecodable++
		return
	case v.letters[d.ID] != nil:
		return // an at-least-once duplicate of the same dead letter
	}
	e := &DeadLetter{Dead: d, Partition: m.Partition, Offset: m.Offset}
	if r, ok := v.receipts[d.ID]; ok {
		e.Receipt = &r
		delete(v.receipts, d.ID)
	}
	v.letters[d.ID] = e
	if n := len(v.order); n > 0 && d.LastFailureAt.Before(v.order[n-1].Dead.LastFailureAt) {
		v.sorted = false
	}
	v.order = append(v.order, e)
}

// Version changes whenever the views apply a record.
func (v *Views) Version() uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.version
}

// Status is each tenant's view (tenant "" is every tenant), as
// Admin.Status computes it from the topics; an unknown tenant is
// ErrUnknownTenant.
func (v *Views) Status(tenant string) ([]statusview.Tenant, error) {
	v.mu.RLock()
	records := make([]schemas.Status, 0, len(v.status))
	for key, s := range v.status {
		if tenant == "" || strings.HasPrefix(key, tenant+"/") {
			records = append(records, s)
		}
	}
	v.mu.RUnlock()
	rows := []statusview.Tenant{}
	for _, tv := range statusview.Tenants(records, v.control.Snapshot(), time.Now()) {
		if tenant == "" || tv.TenantID == tenant {
			rows = append(rows, tv)
		}
	}
	if tenant != "" && len(rows) == 0 {
		return nil, fail(ErrUnknownTenant, "unknown tenant %s: neither %s nor %s holds anything of it", tenant, v.a.cfg.Topics.Control, v.a.cfg.Topics.Status)
	}
	return rows, nil
}

// Tenant is one tenant's control state (connection, consent, mapping:
// never a token), and whether the control topic knows it.
func (v *Views) Tenant(tenant string) (controlplane.TenantState, bool) {
	for _, st := range v.control.Snapshot() {
		if st.TenantID == tenant {
			return st, true
		}
	}
	return controlplane.TenantState{TenantID: tenant, State: schemas.StateNotConnected}, false
}

// PendingRun is a Run requested on the control topic that no partition
// reports yet, or nil.
func (v *Views) PendingRun(tenant string) *schemas.Refresh {
	st, _ := v.Tenant(tenant)
	rows, err := v.Status(tenant)
	var view statusview.Tenant
	if err == nil && len(rows) > 0 {
		view = rows[0]
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	return pendingRun(tenantInfo{id: tenant, state: st, refresh: v.refresh[tenant]}, view)
}

// EnrichmentRow is one current enrichment, small enough to keep 100,000
// of a tenant in memory; Views.Enrichment decodes the whole record.
type EnrichmentRow struct {
	ProfileID  string
	Status     string
	SkipReason string
	Confidence string
	// Company, Industry, Employees, Revenue and Location are the
	// firmographics shown in a table ("" when not matched); SentName is
	// the company name that was sent.
	Company, Industry, Employees, Revenue, Location string
	SentName                                        string
	EnrichedAt                                      time.Time
	raw                                             []byte
	idLower                                         string // for a search
}

func rowOf(e schemas.Enriched, raw []byte) *EnrichmentRow {
	r := &EnrichmentRow{ProfileID: e.ProfileID, Status: e.Status, SkipReason: e.SkipReason, Confidence: e.Confidence,
		EnrichedAt: e.EnrichedAt, raw: raw, idLower: strings.ToLower(e.ProfileID)}
	if c := e.Company; c != nil {
		r.Company, r.Industry, r.Employees, r.Revenue = c.Name, c.Industry, c.EmployeesRange, c.RevenueRange
		if c.Employees != nil {
			r.Employees = strconv.FormatInt(*c.Employees, 10)
		}
		if a := c.Address; a != nil {
			r.Location = strings.Trim(strings.Join([]string{a.City, a.Country}, ", "), ", ")
		}
	}
	if e.Sent != nil {
		r.SentName = e.Sent.Name
	}
	return r
}

// tenantRows is one tenant's current enrichments. Once read, rows is kept
// sorted by profile id, so a page by profile id needs no sort; while the
// topic is first read, rows only grows (an insert into a sorted slice per
// record would be quadratic) and is rebuilt from byID on the first read.
type tenantRows struct {
	byID    map[string]*EnrichmentRow
	rows    []*EnrichmentRow
	ordered bool           // rows is sorted and holds exactly byID's values
	counts  map[string]int // by status
	// sortedBy caches the rows ordered by another column until a change.
	sortedBy map[string][]*EnrichmentRow
}

func byProfile(r *EnrichmentRow, id string) int { return strings.Compare(r.ProfileID, id) }

func (t *tenantRows) put(id string, row *EnrichmentRow) {
	old := t.byID[id]
	if old != nil {
		t.counts[old.Status]--
	}
	t.sortedBy = nil
	switch {
	case row == nil && old == nil:
		return
	case row == nil:
		delete(t.byID, id)
		if t.ordered {
			if i, ok := slices.BinarySearchFunc(t.rows, id, byProfile); ok {
				t.rows = slices.Delete(t.rows, i, i+1)
			}
		}
		return
	}
	t.byID[id] = row
	t.counts[row.Status]++
	switch {
	case t.ordered:
		i, found := slices.BinarySearchFunc(t.rows, id, byProfile)
		if found {
			t.rows[i] = row
		} else {
			t.rows = slices.Insert(t.rows, i, row)
		}
	case old == nil:
		t.rows = append(t.rows, row)
	}
}

// order sorts rows once, after the first read of the topic.
func (t *tenantRows) order() {
	if t.ordered {
		return
	}
	t.rows = t.rows[:0]
	for _, r := range t.byID {
		t.rows = append(t.rows, r)
	}
	slices.SortFunc(t.rows, func(x, y *EnrichmentRow) int { return strings.Compare(x.ProfileID, y.ProfileID) })
	t.ordered = true
}

// Sort orders of an EnrichmentQuery.
const (
	SortProfile    = "profile"
	SortStatus     = "status"
	SortCompany    = "company"
	SortConfidence = "confidence"
	SortEnrichedAt = "enriched_at"
)

// EnrichmentQuery selects a page of a tenant's current enrichments.
type EnrichmentQuery struct {
	// Status keeps only ENRICHED, NOT_MATCHED or SKIPPED ("" all).
	Status string
	// Search keeps profile ids containing it (case-insensitive).
	Search string
	// Sort is SortProfile (default), SortStatus, SortCompany,
	// SortConfidence or SortEnrichedAt; Desc reverses it.
	Sort string
	Desc bool
	// Offset and Limit cut the page; Limit 0 is every row.
	Offset, Limit int
}

// EnrichmentPage is one page of a tenant's current enrichments.
type EnrichmentPage struct {
	Rows []EnrichmentRow
	// Matching is how many rows the query selects, All how many current
	// enrichments the tenant has, Counts how many of each status.
	Matching, All int
	Counts        map[string]int
}

var sortOrders = []string{SortProfile, SortStatus, SortCompany, SortConfidence, SortEnrichedAt}

// Enrichments answers a page of the tenant's current enrichments. A tenant
// the control topic never saw is ErrUnknownTenant.
func (v *Views) Enrichments(tenant string, q EnrichmentQuery) (EnrichmentPage, error) {
	q.Status, q.Sort = strings.ToUpper(q.Status), cmp.Or(q.Sort, SortProfile)
	switch {
	case q.Status != "" && !slices.Contains(EnrichedStatuses, q.Status):
		return EnrichmentPage{}, fail(ErrInvalid, "status: %q is not one of %s", q.Status, strings.Join(EnrichedStatuses, ", "))
	case !slices.Contains(sortOrders, q.Sort):
		return EnrichmentPage{}, fail(ErrInvalid, "sort: %q is not one of %s", q.Sort, strings.Join(sortOrders, ", "))
	case q.Offset < 0 || q.Limit < 0:
		return EnrichmentPage{}, fail(ErrInvalid, "offset, limit: must not be negative")
	}
	if _, known := v.Tenant(tenant); !known {
		return EnrichmentPage{}, unknownTenant(tenant, v.a.cfg.Topics.Control)
	}
	search := strings.ToLower(q.Search)
	// The write lock: a sort order is cached on first use.
	v.mu.Lock()
	defer v.mu.Unlock()
	page := EnrichmentPage{Counts: map[string]int{}}
	t := v.enriched[tenant]
	if t == nil {
		return page, nil
	}
	t.order()
	for s, n := range t.counts {
		if n > 0 {
			page.Counts[s] = n
		}
	}
	page.All = len(t.rows)
	rows := t.rows
	if q.Sort != SortProfile {
		rows = t.sorted(q.Sort)
	}
	at := func(i int) *EnrichmentRow {
		if q.Desc {
			return rows[len(rows)-1-i]
		}
		return rows[i]
	}
	if q.Status == "" && search == "" {
		// No filter: the page is a slice of the order, whatever its size.
		page.Matching = len(rows)
		for i := q.Offset; i < len(rows) && (q.Limit == 0 || len(page.Rows) < q.Limit); i++ {
			page.Rows = append(page.Rows, *at(i))
		}
		return page, nil
	}
	for i := range rows {
		r := at(i)
		if q.Status != "" && r.Status != q.Status || search != "" && !strings.Contains(r.idLower, search) {
			continue
		}
		if page.Matching >= q.Offset && (q.Limit == 0 || len(page.Rows) < q.Limit) {
			page.Rows = append(page.Rows, *r)
		}
		page.Matching++
	}
	return page, nil
}

// sorted is the rows by a column, then profile id; cached until a change.
func (t *tenantRows) sorted(by string) []*EnrichmentRow {
	if rows, ok := t.sortedBy[by]; ok {
		return rows
	}
	rows := slices.Clone(t.rows)
	col := func(r *EnrichmentRow) string {
		switch by {
		case SortStatus:
			return r.Status
		case SortCompany:
			return r.Company
		case SortConfidence:
			return r.Confidence
		}
		return ""
	}
	slices.SortStableFunc(rows, func(x, y *EnrichmentRow) int {
		if by == SortEnrichedAt {
			return x.EnrichedAt.Compare(y.EnrichedAt)
		}
		return strings.Compare(col(x), col(y))
	})
	if t.sortedBy == nil {
		t.sortedBy = map[string][]*EnrichmentRow{}
	}
	t.sortedBy[by] = rows
	return rows
}

// Enrichment is one profile's current enrichment, decoded whole.
func (v *Views) Enrichment(ctx context.Context, tenant, profile string) (schemas.Enriched, error) {
	v.mu.RLock()
	var raw []byte
	if t := v.enriched[tenant]; t != nil {
		if r := t.byID[profile]; r != nil {
			raw = r.raw
		}
	}
	v.mu.RUnlock()
	if raw == nil {
		return schemas.Enriched{}, fail(ErrNoEnrichment, "no current enrichment for %s/%s", tenant, profile)
	}
	return v.a.codec.DecodeEnriched(ctx, raw)
}

// EnrichedRecords decodes the rows of a page whole (a CSV download).
func (v *Views) EnrichedRecords(ctx context.Context, rows []EnrichmentRow) ([]schemas.Enriched, error) {
	out := make([]schemas.Enriched, 0, len(rows))
	for _, r := range rows {
		e, err := v.a.codec.DecodeEnriched(ctx, r.raw)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// DeadLetters is the dead letters f selects, oldest failure first.
func (v *Views) DeadLetters(f Filter) (DeadLetterList, error) {
	if err := f.Check(); err != nil {
		return DeadLetterList{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.sorted {
		slices.SortStableFunc(v.order, func(x, y *DeadLetter) int { return x.Dead.LastFailureAt.Compare(y.Dead.LastFailureAt) })
		v.sorted = true
	}
	out := DeadLetterList{Undecodable: v.undecodable}
	for _, e := range v.order {
		if f.Match(e.Dead) {
			c := *e // a copy: a receipt may arrive while the caller reads it
			out.Letters = append(out.Letters, &c)
		}
	}
	return out, nil
}
