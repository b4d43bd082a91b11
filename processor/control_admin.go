package processor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
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

// ControlRecord is one record of the control topic as an admin sees it.
type ControlRecord struct {
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
func (r ControlRecord) Trusted() bool {
	return r.Verdict == VerdictVerified || r.Verdict == VerdictUnverified && !r.KeysHere
}

// ReadControlLog reads the whole control topic, checking each record as the
// service would, but with the admin's keys: an event signed by a key the
// admin does not hold is unverified, not refused.
func ReadControlLog(ctx context.Context, k Kafka, topic string, codec *schemas.Codec, auth ControlAuth) ([]ControlRecord, error) {
	var out []ControlRecord
	err := ReadAll(ctx, k, topic, func(m kafka.Message) {
		out = append(out, checkRecord(ctx, codec, auth, m))
	})
	return out, err
}

func checkRecord(ctx context.Context, codec *schemas.Codec, auth ControlAuth, m kafka.Message) ControlRecord {
	r := ControlRecord{Key: string(m.Key), Partition: m.Partition, Offset: m.Offset, Time: m.Time, KeysHere: auth.Enabled()}
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

// TenantControl is what admins know of one tenant before writing an event.
type TenantControl struct {
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

// ReadTenantControl reads what admins need to know of a tenant from the
// control and status topics.
func ReadTenantControl(ctx context.Context, k Kafka, topics Topics, codec *schemas.Codec, auth ControlAuth, tenant string) (TenantControl, error) {
	topics = topics.WithDefaults()
	tc := TenantControl{Tenant: tenant, Highest: map[string]int64{}}
	records, err := ReadControlLog(ctx, k, topics.Control, codec, auth)
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
	applied, err := ReadControlStatus(ctx, k, topics.Status, codec)
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

// ReadControlStatus reads the tenants' control status records (key
// tenant/control) from the status topic, by tenant.
func ReadControlStatus(ctx context.Context, k Kafka, topic string, codec *schemas.Codec) (map[string]schemas.Status, error) {
	out := map[string]schemas.Status{}
	err := ReadAll(ctx, k, topic, func(m kafka.Message) {
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

// AttributeSample is what the tail of the profiles topic shows of one
// tenant's profiles.
type AttributeSample struct {
	// Profiles is how many distinct profiles of the tenant were seen.
	Profiles int
	// Attributes counts, per attribute name, the profiles holding a
	// non-blank value for it.
	Attributes map[string]int
}

// RecentAttributes reads the last perPartition records of every partition
// of the profiles topic and samples the tenant's profiles (latest per key,
// deletions dropped): enough to tell whether a mapped attribute exists.
func RecentAttributes(ctx context.Context, k Kafka, topic string, codec *schemas.Codec, tenant string, perPartition int) (AttributeSample, error) {
	conn, err := k.Connect()
	if err != nil {
		return AttributeSample{}, err
	}
	ends, err := kafkaio.Spans(ctx, conn, topic)
	if err != nil {
		return AttributeSample{}, err
	}
	var mu sync.Mutex
	latest := map[string]map[string]string{}
	errs := make(chan error, len(ends))
	prefix := []byte(tenant + "/")
	for partition, s := range ends {
		go func() {
			errs <- readTail(ctx, conn, topic, partition, max(s.First, s.End-int64(perPartition)), s.End, func(m kafka.Message) {
				if len(m.Key) <= len(prefix) || string(m.Key[:len(prefix)]) != string(prefix) {
					return
				}
				var attrs map[string]string
				if m.Value != nil {
					p, err := codec.DecodeProfile(ctx, m.Value)
					if err != nil || p.TenantID != tenant {
						return
					}
					attrs = p.Attributes
				}
				mu.Lock()
				defer mu.Unlock()
				latest[string(m.Key)] = attrs
			})
		}()
	}
	for range ends {
		if err := <-errs; err != nil {
			return AttributeSample{}, err
		}
	}
	sample := AttributeSample{Attributes: map[string]int{}}
	for _, attrs := range latest {
		if attrs == nil {
			continue
		}
		sample.Profiles++
		for name, v := range attrs {
			if strings.TrimSpace(v) != "" {
				sample.Attributes[name]++
			}
		}
	}
	return sample, nil
}

// readTail reads one partition from offset from up to (not including) end.
func readTail(ctx context.Context, conn kafkaio.Conn, topic string, partition int, from, end int64, apply func(kafka.Message)) error {
	if from >= end {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: conn.Brokers, Dialer: conn.Dialer, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return err
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("read %s/%d: %w", topic, partition, err)
		}
		apply(m)
		if m.Offset+1 >= end {
			return nil
		}
	}
}
