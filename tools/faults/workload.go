package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace/retry"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Attribute names the suite's mapping uses (`enricher map --name ...`).
const (
	attrName     = "CompanyName"
	attrWebsite  = "Website"
	attrLocation = "Location"
)

var (
	stems     = []string{"Contoso", "Fabrikam", "Northwind", "Tailspin", "Litware", "Wingtip", "Proseware", "Lucerne", "Relecloud", "Woodgrove", "Kestrel", "Boreal"}
	suffixes  = []string{"Inc", "Ltd", "GmbH", "LLC", "Group", "Corp", "AB", "Labs"}
	locations = []string{"Seattle, WA, US", "Austin, TX, US", "Stockholm, SE", "London, GB", "Berlin, DE", "Paris, FR"}
)

// input is one ProfileUnified event the harness writes. The company name is
// unique per tenant, profile and version, so a record in the simulator's
// call log names the input version it came from.
type input struct {
	tenant, profile, key, eventID string
	version                       int64
	name                          string // the mapped company name as sent ("" when blank: SKIPPED, no call)
	value                         []byte
}

// workload is the inputs in the order they are written.
type workload struct {
	inputs []*input
	// byName finds the input version of a record in the simulator's log.
	byName map[string]*input
}

// workloadSpec describes the profiles: profiles spread round-robin over
// tenants; updates of them get a version 2 with changed mapped attributes,
// written updateLag positions after version 1.
type workloadSpec struct {
	tenants   []string
	profiles  int
	updates   int
	updateLag int
	seed      uint64
	runID     string // makes event ids unique per run
	// startAt numbers profiles from here (a second batch of new keys).
	startAt int
	// replayOf, when set, writes the same profiles again: same key, same
	// attributes and version, a new event id.
	blankEvery int // every n-th profile has a blank name (0: never)
}

func buildWorkload(codec *schemas.Codec, spec workloadSpec) (*workload, error) {
	rng := rand.New(rand.NewPCG(spec.seed, 7))
	now := time.Now().UTC().Truncate(time.Millisecond)
	w := &workload{byName: map[string]*input{}}
	type base struct{ stem, suffix, domain, loc string }
	var v1 []*input
	bases := make([]base, spec.profiles)
	for i := 0; i < spec.profiles; i++ {
		n := spec.startAt + i
		stem := stems[rng.IntN(len(stems))]
		b := base{stem: stem, suffix: suffixes[rng.IntN(len(suffixes))], domain: strings.ToLower(stem) + fmt.Sprint(n) + ".com"}
		if rng.IntN(10) < 6 {
			b.loc = locations[rng.IntN(len(locations))]
		}
		bases[i] = b
		tenant := spec.tenants[i%len(spec.tenants)]
		in, err := makeInput(codec, spec, tenant, n, 1, b.stem, b.suffix, b.domain, b.loc, now)
		if err != nil {
			return nil, err
		}
		v1 = append(v1, in)
	}
	// Version 2 of every (profiles/updates)-th profile, written updateLag
	// events after its version 1 (so some arrive while version 1 is in flight).
	v2At := map[int][]*input{}
	if spec.updates > 0 {
		step := max(1, spec.profiles/spec.updates)
		for k := 0; k < spec.updates && k*step < spec.profiles; k++ {
			i := k*step + step/2
			if i >= spec.profiles {
				i = k * step
			}
			b := bases[i]
			in, err := makeInput(codec, spec, v1[i].tenant, spec.startAt+i, 2, b.stem, b.suffix, b.domain, b.loc, now)
			if err != nil {
				return nil, err
			}
			pos := min(i+spec.updateLag, spec.profiles-1)
			v2At[pos] = append(v2At[pos], in)
		}
	}
	for i, in := range v1 {
		w.inputs = append(w.inputs, in)
		w.inputs = append(w.inputs, v2At[i]...)
	}
	for _, in := range w.inputs {
		if in.name != "" {
			w.byName[in.name] = in
		}
	}
	return w, nil
}

func makeInput(codec *schemas.Codec, spec workloadSpec, tenant string, n int, version int64, stem, suffix, domain, loc string, now time.Time) (*input, error) {
	profile := fmt.Sprintf("cust-%07d", n)
	in := &input{tenant: tenant, profile: profile, key: tenant + "/" + profile, version: version,
		eventID: fmt.Sprintf("%s-%s-v%d-%s", tenant, profile, version, spec.runID)}
	in.name = fmt.Sprintf("%s %s %s %s", stem, suffix, tenant, profile)
	website := "https://www." + domain
	if version > 1 {
		in.name += fmt.Sprintf(" Rev%d", version) // a changed mapped attribute
		website = fmt.Sprintf("https://%s/v%d", domain, version)
	}
	attrs := map[string]string{attrName: in.name, attrWebsite: website, "AccountNumber": fmt.Sprintf("ACC-%07d", n),
		"PrimaryEmail": "buyer@" + domain}
	if loc != "" {
		attrs[attrLocation] = loc
	}
	if spec.blankEvery > 0 && n%spec.blankEvery == spec.blankEvery-1 {
		attrs[attrName] = "  " // must come out SKIPPED (map.missing_company_name) without a call
		in.name = ""
	}
	p := schemas.Profile{EventID: in.eventID, TenantID: tenant, ProfileID: profile, Kind: "ACCOUNT", Attributes: attrs, UnifiedAt: now, Version: version}
	v, err := codec.Encode(schemas.ProfileUnified, p.Native())
	if err != nil {
		return nil, err
	}
	in.value = v
	return in, nil
}

// replayOf returns the same profiles again with new event ids: same keys,
// attributes and versions, so nothing needs a call or a new output.
func replayOf(codec *schemas.Codec, w *workload, runID string) (*workload, error) {
	out := &workload{byName: w.byName}
	for _, in := range w.inputs {
		p, err := codec.DecodeProfile(context.Background(), in.value)
		if err != nil {
			return nil, err
		}
		p.EventID = in.eventID + "-replay-" + runID
		v, err := codec.Encode(schemas.ProfileUnified, p.Native())
		if err != nil {
			return nil, err
		}
		c := *in
		c.eventID, c.value = p.EventID, v
		out.inputs = append(out.inputs, &c)
	}
	return out, nil
}

// writer writes inputs to the profiles topic with the service's partitioner
// (murmur2, as the Java clients), acks=all, retrying through broker outages.
type writer struct {
	w       *kafka.Writer
	written atomic.Int64
	retries atomic.Int64

	mu   sync.Mutex
	errs []string // the first few errors that made a batch retry
}

func (w *writer) errors() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.errs...)
}

func newWriter(bootstrap string) *writer {
	return &writer{w: &kafka.Writer{Addr: kafka.TCP(bootstrap), Topic: topicProfiles, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchSize: 2000, BatchBytes: 16 << 20, BatchTimeout: 2 * time.Millisecond,
		MaxAttempts: 3, WriteBackoffMin: 100 * time.Millisecond, WriteBackoffMax: time.Second}}
}

func (w *writer) close() { _ = w.w.Close() }

// write writes msgs, retrying the batch with backoff until ctx ends. A retry
// after a partial failure can write an input twice; the analysis reads the
// topic back and counts such copies separately.
func (w *writer) write(ctx context.Context, ins []*input) error {
	msgs := make([]kafka.Message, len(ins))
	for i, in := range ins {
		msgs[i] = kafka.Message{Key: []byte(in.key), Value: in.value}
	}
	pace := retry.Schedule{First: 100 * time.Millisecond, Max: 2 * time.Second, Jitter: retry.Equal}
	for attempt := 1; ; attempt++ {
		err := w.w.WriteMessages(ctx, msgs...)
		if err == nil {
			w.written.Add(int64(len(ins)))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.retries.Add(1)
		w.mu.Lock()
		if len(w.errs) < 3 {
			w.errs = append(w.errs, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), truncate(err.Error(), 300)))
		}
		w.mu.Unlock()
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) {
			var rest []kafka.Message
			for i, e := range werrs {
				if e != nil {
					rest = append(rest, msgs[i])
				}
			}
			w.written.Add(int64(len(msgs) - len(rest)))
			msgs = rest
			if len(msgs) == 0 {
				return nil
			}
		}
		if err := pace.Wait(ctx, attempt); err != nil {
			return err
		}
	}
}

// writePaced writes all inputs evenly over d (d 0: as fast as possible, in
// chunks), and returns when the last one is acknowledged.
func (w *writer) writePaced(ctx context.Context, ins []*input, d time.Duration) error {
	if d <= 0 {
		for len(ins) > 0 {
			n := min(len(ins), 5000)
			if err := w.write(ctx, ins[:n]); err != nil {
				return err
			}
			ins = ins[n:]
		}
		return nil
	}
	start := time.Now()
	done := 0
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for done < len(ins) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		due := min(len(ins), int(float64(len(ins))*float64(time.Since(start))/float64(d))+1)
		if due > done {
			if err := w.write(ctx, ins[done:due]); err != nil {
				return err
			}
			done = due
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
