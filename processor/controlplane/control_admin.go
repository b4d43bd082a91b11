package controlplane

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// What the admin commands need to know before they write a control event,
// and what `enricher control show` shows: the control topic record by
// record, verified with the keys the admin holds, beside what the service
// says it applied (the tenants' control status records).

// Verdicts of ControlRecord besides the refusal reasons.
const (
	VerdictVerified   = "verified"   // the signature checks out with a key the admin holds
	VerdictUnverified = "unverified" // no key here to check it with
)

// Record is one record of the control topic as an admin sees it.
type Record struct {
	Key       string
	Partition int
	Offset    int64
	Time      time.Time
	Event     *schemas.Control // nil when the value is no event
	// Verdict is VerdictVerified, VerdictUnverified or the reason the
	// service refuses the record (control.*).
	Verdict string
	Detail  string
	// KeysHere: the admin gave keys to check with. Without any, every
	// signed record is unverified, and can only be taken as it is.
	KeysHere bool
}

// Trusted is whether the record can be taken as an admin's: verified, or
// unverified because no key was given here at all. A record signed by a
// key the admin does not hold, while the admin holds others, is not.
func (r Record) Trusted() bool {
	return r.Verdict == VerdictVerified || r.Verdict == VerdictUnverified && !r.KeysHere
}

// ReadLog reads the whole control topic, checking each record as the
// service would, but with the admin's keys: an event signed by a key the
// admin does not hold is unverified, not refused.
func ReadLog(ctx context.Context, k kafkaio.Config, topic string, codec *schemas.Codec, auth Auth) ([]Record, error) {
	var out []Record
	err := kafkaio.ReadAll(ctx, k, topic, func(m kafka.Message) {
		out = append(out, checkRecord(ctx, codec, auth, m))
	})
	return out, err
}

func checkRecord(ctx context.Context, codec *schemas.Codec, auth Auth, m kafka.Message) Record {
	r := Record{Key: string(m.Key), Partition: m.Partition, Offset: m.Offset, Time: m.Time, KeysHere: auth.Enabled()}
	if _, _, ok := controlKey(m.Key); !ok {
		r.Verdict = ReasonControlKey
		return r
	}
	if len(m.Value) == 0 {
		r.Verdict, r.Detail = ReasonTombstone, "null or 0-byte value"
		return r
	}
	ev, err := codec.DecodeControl(ctx, m.Value)
	if err != nil {
		r.Verdict, r.Detail = ReasonUndecodable, err.Error()
		return r
	}
	r.Event = &ev
	if ev.Key() != r.Key {
		r.Verdict, r.Detail = ReasonWrongKey, "the event is "+ev.Key()+"'s"
		return r
	}
	err = auth.Verify(ev)
	var re *RefusedError
	switch {
	case err == nil && auth.Enabled():
		r.Verdict = VerdictVerified
	case err == nil:
		r.Verdict, r.Detail = VerdictUnverified, "no admin key given here"
	case errors.As(err, &re) && re.Reason == ReasonUnknownKey:
		r.Verdict, r.Detail = VerdictUnverified, "signed by "+ev.KeyID+", a key not given here"
	case errors.As(err, &re):
		r.Verdict, r.Detail = re.Reason, re.Err.Error()
	default:
		r.Verdict, r.Detail = ReasonBadSignature, err.Error()
	}
	return r
}

// Tenant is what admins know of one tenant before writing an event.
type Tenant struct {
	Tenant string
	// Connected: a trusted connection event is on the topic, or the service
	// says it applied one.
	Connected bool
	// Highest is the highest sequence per kind among trusted events and
	// the sequences the service applied: the next event must be above it.
	Highest map[string]int64
	// Applied is the tenant's control status record, if the service wrote one.
	Applied *schemas.Status
}

// ReadTenant reads what admins need to know of a tenant from the
// control and status topics.
func ReadTenant(ctx context.Context, k kafkaio.Config, topics kafkaio.Topics, codec *schemas.Codec, auth Auth, tenant string) (Tenant, error) {
	topics = topics.WithDefaults()
	tc := Tenant{Tenant: tenant, Highest: map[string]int64{}}
	records, err := ReadLog(ctx, k, topics.Control, codec, auth)
	if err != nil {
		return tc, err
	}
	for _, r := range records {
		if r.Event == nil || !r.Trusted() || r.Event.TenantID != tenant {
			continue
		}
		kind := r.Event.Kind()
		tc.Highest[kind] = max(tc.Highest[kind], r.Event.Sequence)
		if kind == schemas.KindConnection {
			tc.Connected = true
		}
	}
	applied, err := ReadApplied(ctx, k, topics.Status, codec)
	if err != nil {
		return tc, err
	}
	if s, ok := applied[tenant]; ok {
		tc.Applied = &s
		for kind, seq := range s.ControlSequences {
			if schemas.ValidKind(kind) {
				tc.Highest[kind] = max(tc.Highest[kind], seq)
			}
		}
		if s.AppliedControl[schemas.KindConnection] != "" {
			tc.Connected = true
		}
	}
	return tc, nil
}

// ReadApplied reads the tenants' control status records (key
// tenant/control) from the status topic, by tenant.
func ReadApplied(ctx context.Context, k kafkaio.Config, topic string, codec *schemas.Codec) (map[string]schemas.Status, error) {
	out := map[string]schemas.Status{}
	err := kafkaio.ReadAll(ctx, k, topic, func(m kafka.Message) {
		tenant, ok := strings.CutSuffix(string(m.Key), "/control")
		if !ok {
			return
		}
		if m.Value == nil {
			delete(out, tenant)
			return
		}
		if s, err := codec.DecodeStatus(ctx, m.Value); err == nil && s.TenantID == tenant && s.Partition == schemas.ControlPartition {
			out[tenant] = s
		}
	})
	return out, err
}
