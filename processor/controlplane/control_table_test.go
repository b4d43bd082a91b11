package controlplane

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/processor/internal/testkit"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// controlLog builds control-topic records by hand, so the table's rules
// can be checked record by record, compaction and restarts included.
type controlLog struct {
	t     *testing.T
	codec *schemas.Codec
	auth  Auth
	at    time.Time
	seq   int64
}

func newControlLog(t *testing.T) *controlLog {
	t.Helper()
	return &controlLog{t: t, codec: testkit.Codec(t, kafkaio.Topics{}.Subjects()), auth: Auth{Key: []byte("admin-key")}, at: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}
}

// event signs a new event of tenant, issued a minute after the last one.
func (l *controlLog) event(tenant string, ev schemas.Control) schemas.Control {
	l.at, l.seq = l.at.Add(time.Minute), l.seq+1
	ev.TenantID, ev.IssuedAt, ev.IssuedBy, ev.Sequence = tenant, l.at, "admin", l.seq
	ev.EventID = ev.Key() + "-" + l.at.Format("1504")
	if err := l.auth.Sign(&ev); err != nil {
		l.t.Fatal(err)
	}
	return ev
}

// record puts ev (or raw when ev is nil) at offset under key.
func (l *controlLog) record(offset int64, key string, ev *schemas.Control, raw []byte) kafka.Message {
	if ev != nil {
		native, err := ev.Native()
		if err != nil {
			l.t.Fatal(err)
		}
		if raw, err = l.codec.Encode(schemas.ControlEvent, native); err != nil {
			l.t.Fatal(err)
		}
	}
	return kafka.Message{Key: []byte(key), Value: raw, Offset: offset}
}

func (l *controlLog) read(table *Table, msgs ...kafka.Message) []error {
	var errs []error
	for _, m := range msgs {
		_, err := table.ApplyRecord(l.codec, l.auth, m)
		errs = append(errs, err)
	}
	return errs
}

func newTestTable() *Table {
	return NewTable(TokenSources{AllowPlaintext: true}.Resolver())
}

func reasonOf(err error) string {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

func stateOf(t *testing.T, table *Table, tenant string) TenantState {
	t.Helper()
	for _, s := range table.Snapshot() {
		if s.TenantID == tenant {
			return s
		}
	}
	t.Fatalf("tenant %s not in the table", tenant)
	return TenantState{}
}

func TestAReplayedConsentIsRefusedAndTheGenuineOneWrittenAgain(t *testing.T) {
	l := newControlLog(t)
	conn := l.event("acme", schemas.Control{Connection: &schemas.Connection{TokenRef: "plain:tok-acme"}})
	mapping := l.event("acme", schemas.Control{Mapping: &schemas.Mapping{NameAttribute: "Name"}})
	give := l.event("acme", schemas.Control{Consent: &schemas.Consent{Given: true}})
	withdraw := l.event("acme", schemas.Control{Consent: &schemas.Consent{Given: false}})
	giveRec := l.record(2, "acme/consent", &give, nil)
	history := []kafka.Message{l.record(0, "acme/connection", &conn, nil), l.record(1, "acme/mapping", &mapping, nil), giveRec}

	table := newTestTable()
	l.read(table, history...)
	table.settle()
	if _, d := table.Gate("acme"); d != nil {
		t.Fatalf("after give: %+v", d)
	}
	l.read(table, l.record(3, "acme/consent", &withdraw, nil))
	replay := giveRec
	replay.Offset = 4
	if errs := l.read(table, replay); reasonOf(errs[0]) != ReasonReplayed {
		t.Fatalf("replay of the give: %v, want %s", errs[0], ReasonReplayed)
	}
	if _, d := table.Gate("acme"); d == nil || d.Reason != ReasonNoConsent {
		t.Fatalf("after the replay the gate says %+v, want no consent", d)
	}
	copies := table.rewrites("control")
	if len(copies) != 1 || string(copies[0].Key) != "acme/consent" {
		t.Fatalf("rewrites %v, want the withdrawal under acme/consent", copies)
	}
	if again := table.rewrites("control"); len(again) != 0 {
		t.Fatalf("a rewrite was listed twice before it was read back: %d", len(again))
	}
	copied := copies[0]
	copied.Offset = 5
	ev, err := table.ApplyRecord(l.codec, l.auth, copied)
	if err != nil || ev != nil {
		t.Fatalf("reading our own copy back: %v, %v; want no change", ev, err)
	}
	if more := table.rewrites("control"); len(more) != 0 {
		t.Fatalf("after the copy was read back, %d more rewrites", len(more))
	}
	st := stateOf(t, table, "acme")
	if st.Refused != 1 || st.RefusedByReason[ReasonReplayed] != 1 || st.State != schemas.StateNoConsent {
		t.Fatalf("state %+v", st)
	}

	// Restart, after compaction kept the latest record of each key: the
	// copy of the withdrawal (offset 5). Nothing is counted twice.
	restarted := newTestTable()
	restarted.Restore(table.controlRecords())
	l.read(restarted, history[0], history[1], copied)
	restarted.settle()
	if st := stateOf(t, restarted, "acme"); st.State != schemas.StateNoConsent || st.Refused != 1 || len(st.Lost) != 0 {
		t.Fatalf("after compaction and a restart: %+v", st)
	}

	// Restart without compaction: the whole log is read again. The give
	// (history) and the replay (counted) count nothing new.
	again := newTestTable()
	again.Restore(table.controlRecords())
	errs := l.read(again, append(history, l.record(3, "acme/consent", &withdraw, nil), replay, copied)...)
	again.settle()
	if st := stateOf(t, again, "acme"); st.State != schemas.StateNoConsent || st.Refused != 1 {
		t.Fatalf("after a restart reading the whole log: %+v (errors %v)", st, errs)
	}
}

func TestAReplayCompactedIntoPlaceWhileNoInstanceRanFailsClosed(t *testing.T) {
	l := newControlLog(t)
	conn := l.event("acme", schemas.Control{Connection: &schemas.Connection{TokenRef: "plain:tok-acme"}})
	mapping := l.event("acme", schemas.Control{Mapping: &schemas.Mapping{NameAttribute: "Name"}})
	give := l.event("acme", schemas.Control{Consent: &schemas.Consent{Given: true}})
	withdraw := l.event("acme", schemas.Control{Consent: &schemas.Consent{Given: false}})
	removal := l.event("acme", schemas.Control{Removal: &schemas.Removal{Purge: true}})
	running := newTestTable()
	l.read(running, l.record(0, "acme/connection", &conn, nil), l.record(1, "acme/mapping", &mapping, nil),
		l.record(2, "acme/consent", &give, nil), l.record(3, "acme/consent", &withdraw, nil), l.record(4, "acme/removal", &removal, nil))
	running.settle()
	saved := running.controlRecords()

	// While no instance runs, the give is written again, and a tombstone
	// under the removal; compaction then keeps only those under their keys.
	restarted := newTestTable()
	restarted.Restore(saved)
	errs := l.read(restarted, l.record(0, "acme/connection", &conn, nil), l.record(1, "acme/mapping", &mapping, nil),
		l.record(5, "acme/consent", &give, nil), l.record(6, "acme/removal", nil, nil))
	restarted.settle()
	if reasonOf(errs[2]) != ReasonReplayed || reasonOf(errs[3]) != ReasonTombstone {
		t.Fatalf("refusals %v", errs)
	}
	st := stateOf(t, restarted, "acme")
	if st.State != schemas.StateRemoved || !slices.Contains(st.Lost, schemas.KindConsent) || !slices.Contains(st.Lost, schemas.KindRemoval) {
		t.Fatalf("state %+v, want REMOVED with consent and removal lost", st)
	}
	if rm := restarted.Removals(); len(rm) != 1 || !rm[0].At.Equal(removal.IssuedAt) || rm[0].Purge {
		t.Fatalf("removals %+v: want the lost removal at its time, without a second purge", rm)
	}
	if copies := restarted.rewrites("control"); len(copies) != 0 {
		t.Fatalf("%d rewrites without a genuine event to write", len(copies))
	}

	// An admin connects again and gives consent: new sequences apply.
	reconnect := l.event("acme", schemas.Control{Connection: &schemas.Connection{TokenRef: "plain:tok-acme"}})
	regive := l.event("acme", schemas.Control{Consent: &schemas.Consent{Given: true}})
	l.read(restarted, l.record(7, "acme/connection", &reconnect, nil), l.record(8, "acme/consent", &regive, nil))
	if _, d := restarted.Gate("acme"); d == nil || d.Reason != ReasonNoMapping {
		t.Fatalf("after reconnecting: %+v; want only the mapping missing (it was issued before the removal)", d)
	}
	// The counts survive a further restart, each refusal once.
	third := newTestTable()
	third.Restore(restarted.controlRecords())
	l.read(third, l.record(5, "acme/consent", &give, nil), l.record(6, "acme/removal", nil, nil))
	if st := stateOf(t, third, "acme"); st.Refused != 2 || st.RefusedByReason[ReasonReplayed] != 1 || st.RefusedByReason[ReasonTombstone] != 1 {
		t.Fatalf("counts after another restart: %+v", st)
	}
}

func TestRefusedRecordsAreCountedForTheTenantOfTheirKey(t *testing.T) {
	l := newControlLog(t)
	acmeConn := l.event("acme", schemas.Control{Connection: &schemas.Connection{TokenRef: "plain:tok-acme"}})
	globexGive := l.event("globex", schemas.Control{Consent: &schemas.Consent{Given: true}})
	forger := Auth{Key: []byte("a-guess")}
	forged := schemas.Control{EventID: "f", TenantID: "acme", IssuedAt: l.at, Consent: &schemas.Consent{Given: true}}
	if err := forger.Sign(&forged); err != nil {
		t.Fatal(err)
	}
	unsigned := schemas.Control{EventID: "u", TenantID: "acme", IssuedAt: l.at, Sequence: 99, Mapping: &schemas.Mapping{NameAttribute: "N"}}
	table := newTestTable()
	errs := l.read(table,
		l.record(0, "acme/connection", &acmeConn, nil),
		l.record(1, "acme/consent", &globexGive, nil), // globex's signed event under acme's key
		l.record(2, "acme/consent", nil, []byte{}),
		l.record(3, "acme/consent", nil, nil),
		l.record(4, "acme/consent", nil, []byte("garbage")),
		l.record(5, "acme/consent", &forged, nil),
		l.record(6, "acme/mapping", &unsigned, nil),
		l.record(7, "no-slash", &globexGive, nil),
		l.record(8, "acme/unknown-kind", &globexGive, nil),
	)
	want := []string{"", ReasonWrongKey, ReasonEmptyValue, ReasonTombstone, ReasonUndecodable, ReasonUnknownKey, ReasonUnsigned, ReasonControlKey, ReasonControlKey}
	for i, err := range errs {
		if reasonOf(err) != want[i] {
			t.Errorf("record %d: %v, want %q", i, err, want[i])
		}
	}
	acme := stateOf(t, table, "acme")
	if acme.Refused != 6 || acme.RefusedByReason[ReasonWrongKey] != 1 || acme.State != schemas.StateNoConsent {
		t.Errorf("acme %+v", acme)
	}
	for _, s := range table.Snapshot() {
		if s.TenantID != "acme" {
			t.Errorf("a tenant %q was created by a refused record", s.TenantID)
		}
	}
}

func TestPausesTokensRunsAndRemovals(t *testing.T) {
	l := newControlLog(t)
	conn := l.event("acme", schemas.Control{Connection: &schemas.Connection{TokenRef: "plain:tok-acme"}})
	mapping := l.event("acme", schemas.Control{Mapping: &schemas.Mapping{NameAttribute: "Name"}})
	give := l.event("acme", schemas.Control{Consent: &schemas.Consent{Given: true}})
	run := l.event("acme", schemas.Control{Refresh: &schemas.Refresh{RunID: "run-1", Force: true}})
	log := []kafka.Message{l.record(0, "acme/connection", &conn, nil), l.record(1, "acme/mapping", &mapping, nil),
		l.record(2, "acme/consent", &give, nil), l.record(3, "acme/refresh", &run, nil)}
	table := newTestTable()
	l.read(table, log...)
	table.settle()
	select {
	case <-table.Changed():
	default:
		t.Fatal("no change signalled after applying events")
	}
	key, ok := table.ProgramOf("acme")
	if !ok || key != (leadspace.Credentials{Token: "tok-acme"}).Key() {
		t.Fatalf("ProgramOf: %q %v", key, ok)
	}
	if r, ok := table.Run("acme"); !ok || r.ID != "run-1" || !r.Force || r.Cancel || !r.RequestedAt.Equal(run.IssuedAt) {
		t.Fatalf("Run: %+v %v", r, ok)
	}

	// A 401 pause survives a restart, and a new connection lifts it.
	if !table.Pause("acme", leadspace.Credentials{Token: "tok-acme"}, leadspace.ReasonUnauthorized) {
		t.Fatal("pause not taken")
	}
	restarted := newTestTable()
	restarted.Restore(table.controlRecords())
	l.read(restarted, log...)
	restarted.settle()
	if _, d := restarted.Gate("acme"); d == nil || d.Cause != leadspace.ReasonUnauthorized {
		t.Fatalf("after a restart the 401 pause is gone: %+v", d)
	}
	bad := l.event("acme", schemas.Control{Connection: &schemas.Connection{TokenRef: "plain:tok\nX-Injected: 1"}})
	l.read(restarted, l.record(4, "acme/connection", &bad, nil))
	if _, d := restarted.Gate("acme"); d == nil || d.Cause != ReasonTokenInvalid || d.State != schemas.StatePaused {
		t.Fatalf("a token holding a newline: %+v, want paused with %s", d, ReasonTokenInvalid)
	}
	if _, ok := restarted.ProgramOf("acme"); ok {
		t.Fatal("ProgramOf answers for a tenant whose token is invalid")
	}

	removal := l.event("acme", schemas.Control{Removal: &schemas.Removal{Purge: true}})
	l.read(restarted, l.record(5, "acme/removal", &removal, nil))
	if rm := restarted.Removals(); len(rm) != 1 || rm[0].Tenant != "acme" || !rm[0].Purge {
		t.Fatalf("removals %+v", rm)
	}
	back := l.event("acme", schemas.Control{Connection: &schemas.Connection{TokenRef: "plain:tok-acme"}})
	l.read(restarted, l.record(6, "acme/connection", &back, nil))
	if rm := restarted.Removals(); len(rm) != 0 {
		t.Fatalf("removals after reconnecting: %+v", rm)
	}
}
