// Package group is this instance's membership in the consumer group, run by
// hand over kafka-go's group requests: joining, the assignors (sticky and
// cooperative, range for mixed versions), heartbeats, commits, and the
// split of the Leadspace rate between members by their work. The assignors
// and the split are pure functions with table tests of their own.
package group

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/leadspace/retry"
	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
)

// Member is this instance's membership in the consumer group of the
// profiles topic, written on kafka-go's protocol client rather than its
// ConsumerGroup, for three things the latter does not give:
//
//   - static membership (group.instance.id, KIP-345): an instance restarted
//     with the same id within the session timeout takes its partitions back
//     without a rebalance of the whole group;
//   - control over a rebalance: the member keeps heartbeating while it
//     finishes and commits its in-flight work, and only then rejoins, so
//     nothing is cancelled and nothing is paid for twice;
//   - a sticky assignment that keeps partitions where they are, and tells
//     every member how many members share the Leadspace programs' rate.
//
// The protocol is the classic (eager) one; the assignment protocol is our
// own sticky one, with kafka-go's "range" advertised as well so a group can
// be upgraded from older versions of the enricher one instance at a time.
type Member struct {
	client   *kafka.Client
	cfg      Config
	topic    string
	log      *zap.Logger
	memberID string
	// Work, when set, reports the member's partitions' work at each join,
	// for the leader's split of the rate (share.go).
	Work func() []PartitionWork
}

// Config configures the consumer group membership.
type Config struct {
	// ID of the consumer group. Default: leadspace-enricher.
	ID string
	// InstanceID enables static membership: give each instance a stable,
	// unique id (e.g. its StatefulSet pod name). Two running instances with
	// the same id fence each other. Needs Kafka 2.3+; the in-process test
	// broker does not implement it. Default: "" (dynamic membership).
	InstanceID string
	// SessionTimeout is how long the coordinator waits for a heartbeat
	// before it considers the member dead and rebalances. A killed instance
	// holds its partitions this long, and every join waits for it: lower is
	// faster recovery from crashes, higher tolerates longer pauses. Must be
	// within the broker's group.min/max.session.timeout.ms (6s..30m by
	// default). Default: 10s.
	SessionTimeout time.Duration
	// HeartbeatInterval between heartbeats; at most a third of the session
	// timeout, so two may be lost without losing the session. A member
	// learns of a rebalance at its next heartbeat, and the group waits for
	// it: 1s keeps that wait short when an instance joins. While the
	// Leadspace rate is split by backlog among several members, they
	// heartbeat at most every 250 ms (splitWatch). Default: 1s.
	HeartbeatInterval time.Duration
	// RebalanceTimeout bounds how long the coordinator waits for members to
	// rejoin after a rebalance starts, and so how long a member may take to
	// finish and commit its in-flight work (DrainTimeout must be below it).
	// Default: 30s.
	RebalanceTimeout time.Duration
}

// WithDefaults returns c with every unset setting at its default.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.ID == "" {
		c.ID = "leadspace-enricher"
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = time.Second
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = 30 * time.Second
	}
}

// Validate checks the relations the group protocol needs.
func (c *Config) Validate() error {
	switch {
	case c.SessionTimeout < 6*time.Second || c.SessionTimeout > 30*time.Minute:
		return fmt.Errorf("session-timeout: %s is outside the broker's default bounds 6s..30m", c.SessionTimeout)
	case c.HeartbeatInterval <= 0 || c.HeartbeatInterval > c.SessionTimeout/3:
		return fmt.Errorf("heartbeat-interval: %s must be positive and at most a third of session-timeout (%s)", c.HeartbeatInterval, c.SessionTimeout)
	case c.RebalanceTimeout < c.SessionTimeout:
		return fmt.Errorf("rebalance-timeout: %s must not be below session-timeout (%s)", c.RebalanceTimeout, c.SessionTimeout)
	}
	return nil
}

// The assignment protocols a member offers, in order of preference. The
// coordinator picks the first that every member offers, so a group runs
// cooperatively only once no member of an older version is left in it.
const (
	// protocolCooperative: a rebalance stops only the partitions that
	// move (see withholdOwned): members keep working on the rest
	// while the group rejoins.
	protocolCooperative = "enricher-cooperative"
	// protocolSticky: eager; every member finishes all its work
	// before it rejoins.
	protocolSticky = "enricher-sticky"
	protocolRange  = "range" // kafka-go's RangeGroupBalancer, for mixed-version groups
)

// Assignment is one generation's outcome for this member.
type Assignment struct {
	Generation int
	MemberID   string
	Leader     bool
	Partitions []int
	Members    int // members of the group; 0 when the leader did not say
	// Fleet counts the members that work on partitions (assigned, or
	// still finishing ones that move): they share the Leadspace rate.
	// 0 when the leader did not say.
	Fleet int
	// Share is this member's part of each Leadspace program's rate
	// (share.go); 0 when the leader did not say.
	Share float64
	// Cooperative: partitions kept from the generation before go on
	// running through the rebalance (protocolCooperative).
	Cooperative bool
	// Backlog is the work the rate was split by (share.go), 0 when it
	// was split evenly; counted is the unread part of it the leader
	// counted for this member. Both say when to ask for a new split.
	Backlog int64
	Counted int64
}

// ErrFenced means another process joined with this member's instance id.
var ErrFenced = errors.New("another instance joined the group with the same group-instance-id; each instance needs its own")

func NewMember(conn kafkaio.Conn, cfg Config, topic string, log *zap.Logger) *Member {
	cl := conn.Client()
	// JoinGroup blocks until the rebalance completes; give it the time.
	cl.Timeout = cfg.RebalanceTimeout + 10*time.Second
	return &Member{client: cl, cfg: cfg, topic: topic, log: log}
}

// Join joins the group and waits for this member's assignment. owned lists
// the partitions it held before, a hint for the sticky assignment. It
// retries through coordinator moves and outages until ctx ends; only a
// fenced instance id is returned as an error besides ctx's.
func (m *Member) Join(ctx context.Context, owned []int) (Assignment, error) {
	for attempt := 1; ; attempt++ {
		a, err := m.joinOnce(ctx, owned)
		if err == nil {
			return a, nil
		}
		switch {
		case ctx.Err() != nil:
			return Assignment{}, ctx.Err()
		case errors.Is(err, ErrFenced):
			return Assignment{}, err
		case errors.Is(err, kafka.MemberIDRequired), errors.Is(err, kafka.RebalanceInProgress):
			continue // the broker told us what to do next; no wait
		case errors.Is(err, kafka.UnknownMemberId), errors.Is(err, kafka.IllegalGeneration):
			m.memberID = ""
			continue
		}
		pace, log := kafkaio.Backoff, m.log.Warn
		if coordinatorSettling(err) {
			pace = coordinatorBackoff
			if attempt < 5 {
				log = m.log.Info // usual on a group's first use
			}
		}
		log("joining the consumer group failed; retrying", zap.String("group", m.cfg.ID), zap.Int("attempt", attempt), zap.Error(err))
		if err := pace.Wait(ctx, attempt); err != nil {
			return Assignment{}, err
		}
	}
}

// coordinatorBackoff paces joins while the group's coordinator is being
// found or loads the group, as on a group's first use: a matter of
// milliseconds, which dependencyBackoff's first 200 ms wait made cost every
// start of an instance.
var coordinatorBackoff = retry.Schedule{First: 25 * time.Millisecond, Max: 10 * time.Second, Jitter: retry.Equal}

// coordinatorSettling says whether a join failed because the group's
// coordinator is moving or loading.
func coordinatorSettling(err error) bool {
	return errors.Is(err, kafka.NotCoordinatorForGroup) || errors.Is(err, kafka.GroupCoordinatorNotAvailable) ||
		errors.Is(err, kafka.GroupLoadInProgress)
}

func (m *Member) joinOnce(ctx context.Context, owned []int) (Assignment, error) {
	res, a, err := m.joinRequest(ctx, owned)
	if err != nil {
		return Assignment{}, err
	}
	return m.sync(ctx, res, a)
}

// joinRequest is the first half of a join: the JoinGroup request, which
// waits until every member has joined.
func (m *Member) joinRequest(ctx context.Context, owned []int) (*kafka.JoinGroupResponse, Assignment, error) {
	sub := kafka.GroupProtocolSubscription{Topics: []string{m.topic}, OwnedPartitions: map[string][]int{m.topic: owned}}
	if m.Work != nil {
		sub.UserData = encodeWork(m.Work())
	}
	jctx, cancel := context.WithTimeout(ctx, m.cfg.RebalanceTimeout+10*time.Second)
	defer cancel()
	res, err := m.client.JoinGroup(jctx, &kafka.JoinGroupRequest{
		GroupID: m.cfg.ID, MemberID: m.memberID, GroupInstanceID: m.cfg.InstanceID,
		SessionTimeout: m.cfg.SessionTimeout, RebalanceTimeout: m.cfg.RebalanceTimeout, ProtocolType: "consumer",
		Protocols: []kafka.GroupProtocol{{Name: protocolCooperative, Metadata: sub}, {Name: protocolSticky, Metadata: sub},
			{Name: protocolRange, Metadata: sub}},
	})
	if err != nil {
		return nil, Assignment{}, fmt.Errorf("join group: %w", err)
	}
	if res.Error != nil {
		if errors.Is(res.Error, kafka.MemberIDRequired) {
			m.memberID = res.MemberID // KIP-394: join again with the id the broker gave
		}
		if errors.Is(res.Error, kafka.FencedInstanceID) {
			return nil, Assignment{}, ErrFenced
		}
		return nil, Assignment{}, fmt.Errorf("join group: %w", res.Error)
	}
	m.memberID = res.MemberID
	a := Assignment{Generation: res.GenerationID, MemberID: res.MemberID, Leader: res.LeaderID == res.MemberID,
		Cooperative: res.ProtocolName == protocolCooperative}
	return res, a, nil
}

// sync is the second half: the leader plans the generation, and every
// member gets its part of the plan.
func (m *Member) sync(ctx context.Context, res *kafka.JoinGroupResponse, a Assignment) (Assignment, error) {
	var err error
	var plan []kafka.SyncGroupRequestAssignment
	if a.Leader {
		if plan, err = m.plan(ctx, res); err != nil {
			return Assignment{}, err
		}
	}
	sctx, cancel := context.WithTimeout(ctx, m.cfg.RebalanceTimeout+10*time.Second)
	defer cancel()
	sres, err := m.client.SyncGroup(sctx, &kafka.SyncGroupRequest{GroupID: m.cfg.ID, GenerationID: res.GenerationID,
		MemberID: res.MemberID, GroupInstanceID: m.cfg.InstanceID, ProtocolType: "consumer", ProtocolName: res.ProtocolName,
		Assignments: plan})
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// kafka-go decodes the assignment before the error code, so a
		// refusal (the group rebalances again: another member joined
		// meanwhile) comes back as an empty assignment that fails to
		// decode. Joining again at once is what the refusal asks for; a
		// connection that truly broke fails the next join and backs off.
		return Assignment{}, fmt.Errorf("sync group: %w (%w)", kafka.RebalanceInProgress, err)
	}
	if err != nil {
		return Assignment{}, fmt.Errorf("sync group: %w", err)
	}
	if sres.Error != nil {
		if errors.Is(sres.Error, kafka.FencedInstanceID) {
			return Assignment{}, ErrFenced
		}
		return Assignment{}, fmt.Errorf("sync group: %w", sres.Error)
	}
	a.Partitions = append([]int(nil), sres.Assignment.AssignedPartitions[m.topic]...)
	sort.Ints(a.Partitions)
	// User data (plan): members, fleet, share in millionths, backlog and
	// counted; a leader of an older version sends fewer, or none.
	data := uvarints(sres.Assignment.UserData, 5)
	data = append(data, make([]uint64, 5-len(data))...)
	a.Members, a.Fleet = int(min(data[0], 1<<20)), int(min(data[1], 1<<20))
	if ppm := data[2]; ppm > 0 && ppm <= 1e6 {
		a.Share = float64(ppm) / 1e6
	}
	a.Backlog, a.Counted = int64(min(data[3], 1<<62)), int64(min(data[4], 1<<62))
	return a, nil
}

// appendUvarints appends vs to b as unsigned varints.
func appendUvarints(b []byte, vs ...uint64) []byte {
	for _, v := range vs {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

// uvarints reads up to n unsigned varints from the start of b.
func uvarints(b []byte, n int) []uint64 {
	out := make([]uint64, 0, n)
	for len(out) < n {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			break
		}
		out, b = append(out, v), b[k:]
	}
	return out
}

// plan is the leader's assignment of the topic's partitions to members,
// with each member's share of the Leadspace rate.
func (m *Member) plan(ctx context.Context, res *kafka.JoinGroupResponse) ([]kafka.SyncGroupRequestAssignment, error) {
	meta, err := m.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{m.topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", m.topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return nil, fmt.Errorf("topic %s is not available", m.topic)
	}
	partitions := make([]int, 0, len(meta.Topics[0].Partitions))
	for _, p := range meta.Topics[0].Partitions {
		partitions = append(partitions, p.ID)
	}
	members := make([]groupPeer, len(res.Members))
	for i, mem := range res.Members {
		members[i] = groupPeer{id: mem.ID, instance: mem.GroupInstanceID, owned: mem.Metadata.OwnedPartitions[m.topic],
			work: decodeWork(mem.Metadata.UserData)}
	}
	var plan map[string][]int
	switch res.ProtocolName {
	case protocolRange:
		plan = assignRange(members, partitions)
	case protocolCooperative:
		plan = withholdOwned(members, assignSticky(members, partitions))
	default:
		plan = assignSticky(members, partitions)
	}
	lag, err := m.lags(ctx, unreported(members, plan))
	if err != nil {
		m.log.Warn("partition lags not read; the Leadspace rate is split by what the members reported", zap.Error(err))
	}
	work := memberWork(members, plan, lag)
	shares, backlog := rateShares(members, plan, work)
	// User data: the members of the group, those sharing the rate, this
	// member's share of it in millionths, the work it was split by, and
	// the unread part of that work counted for this member.
	fleet := fleetOf(members, plan)
	out := make([]kafka.SyncGroupRequestAssignment, 0, len(members))
	for _, mem := range members {
		userData := appendUvarints(nil, uint64(len(members)), uint64(fleet), uint64(math.Round(shares[mem.id]*1e6)),
			uint64(backlog), uint64(work[mem.id].Unread))
		out = append(out, kafka.SyncGroupRequestAssignment{MemberID: mem.id, Assignment: kafka.GroupProtocolAssignment{
			AssignedPartitions: map[string][]int{m.topic: plan[mem.id]}, UserData: userData}})
	}
	return out, nil
}

// Heartbeat tells the coordinator the member is alive, and says whether the
// generation goes on. It returns
// kafka.RebalanceInProgress when the group is rebalancing (the member must
// finish its work, commit and rejoin), kafka.UnknownMemberId or
// kafka.IllegalGeneration when the member was dropped, errFenced when its
// instance id was taken, or a transport error.
func (m *Member) Heartbeat(ctx context.Context, a Assignment) error {
	hctx, cancel := context.WithTimeout(ctx, m.cfg.SessionTimeout)
	defer cancel()
	res, err := m.client.Heartbeat(hctx, &kafka.HeartbeatRequest{GroupID: m.cfg.ID, GenerationID: int32(a.Generation),
		MemberID: a.MemberID, GroupInstanceID: m.cfg.InstanceID})
	if err != nil {
		return err
	}
	if errors.Is(res.Error, kafka.FencedInstanceID) {
		return ErrFenced
	}
	if res.Error != nil {
		return res.Error
	}
	// kafka-go v0.4.51 decodes Heartbeat v1+ answers with the error code
	// and throttle time swapped, so every answer reads as "no error" (a
	// rebalance, a drop, all lost). The heartbeat still keeps the session
	// alive; whether the generation goes on is asked with DescribeGroups.
	return m.generationState(hctx, a)
}

// generationState asks the coordinator about the group: a rebalance in
// progress (kafka.RebalanceInProgress), or this member no longer in it
// (kafka.UnknownMemberId).
func (m *Member) generationState(ctx context.Context, a Assignment) error {
	res, err := m.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{m.cfg.ID}})
	if err != nil {
		return err
	}
	for _, g := range res.Groups {
		if g.GroupID != m.cfg.ID {
			continue
		}
		if g.Error != nil {
			return g.Error
		}
		member := false
		for _, mem := range g.Members {
			member = member || mem.MemberID == a.MemberID
		}
		switch {
		case !member:
			return kafka.UnknownMemberId
		case g.GroupState == "PreparingRebalance", g.GroupState == "CompletingRebalance":
			return kafka.RebalanceInProgress
		}
		return nil
	}
	return fmt.Errorf("group %s not described", m.cfg.ID)
}

// Commit commits the next offsets to consume, with the generation: the
// broker refuses it once the partitions belong to a newer generation.
func (m *Member) Commit(ctx context.Context, a Assignment, offsets map[int]int64) error {
	if len(offsets) == 0 {
		return nil
	}
	commits := make([]kafka.OffsetCommit, 0, len(offsets))
	for p, o := range offsets {
		commits = append(commits, kafka.OffsetCommit{Partition: p, Offset: o})
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := m.client.OffsetCommit(cctx, &kafka.OffsetCommitRequest{GroupID: m.cfg.ID, GenerationID: a.Generation,
		MemberID: a.MemberID, InstanceID: m.cfg.InstanceID, Topics: map[string][]kafka.OffsetCommit{m.topic: commits}})
	if err != nil {
		return err
	}
	for _, p := range res.Topics[m.topic] {
		if p.Error != nil {
			return fmt.Errorf("partition %d: %w", p.Partition, p.Error)
		}
	}
	return nil
}

// Committed reads the group's committed offsets of partitions; a partition
// without one gets -1.
func (m *Member) Committed(ctx context.Context, partitions []int) (map[int]int64, error) {
	out := map[int]int64{}
	if len(partitions) == 0 {
		return out, nil
	}
	err := kafkaio.Backoff.Do(ctx, "fetch committed offsets", func() error {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		res, err := m.client.OffsetFetch(fctx, &kafka.OffsetFetchRequest{GroupID: m.cfg.ID, Topics: map[string][]int{m.topic: partitions}})
		if err != nil {
			return err
		}
		if res.Error != nil {
			return res.Error
		}
		for _, p := range res.Topics[m.topic] {
			if p.Error != nil {
				return p.Error
			}
			out[p.Partition] = p.CommittedOffset
		}
		return nil
	}, kafkaio.Transient, nil)
	return out, err
}

// Leave tells the coordinator the member is going, so its partitions move
// at once instead of after the session timeout. Static members leave too:
// a stopped instance should not hold its partitions.
func (m *Member) Leave(ctx context.Context) {
	if m.memberID == "" && m.cfg.InstanceID == "" {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := m.client.LeaveGroup(lctx, &kafka.LeaveGroupRequest{GroupID: m.cfg.ID,
		Members: []kafka.LeaveGroupRequestMember{{ID: m.memberID, GroupInstanceID: m.cfg.InstanceID}}})
	if err == nil && res.Error != nil {
		err = res.Error
	}
	if err != nil {
		m.log.Info("leaving the consumer group failed; the session timeout will release the partitions", zap.Error(err))
	}
	m.memberID = ""
}

// Members counts the group's members (DescribeGroups), for a generation
// whose leader did not say (an older enricher led it).
func (m *Member) Members(ctx context.Context) (int, error) {
	res, err := m.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{m.cfg.ID}})
	if err != nil {
		return 0, err
	}
	for _, g := range res.Groups {
		if g.GroupID == m.cfg.ID {
			if g.Error != nil {
				return 0, g.Error
			}
			return len(g.Members), nil
		}
	}
	return 0, fmt.Errorf("group %s not described", m.cfg.ID)
}
