package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/describegroups"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/processor"
)

// Without a group instance id every restart joins the group as a new member,
// and the group rebalances each time: in the fault suite's crash loop (20
// SIGKILLs over 100 s across 3 instances) no partition advanced for 22 s
// and 35 s in two runs, against 0 s with ids. One instance alone loses
// little; several without ids are the case to refuse.

// instanceIDSetting names the setting in every message about it.
const instanceIDSetting = "--group-instance-id (ENRICHER_GROUP_INSTANCE_ID)"

// errDynamicMembers refuses a start beside other members without an id.
var errDynamicMembers = errors.New("group-instance-id: other instances of the group run without a group instance id; " +
	"give each instance a stable id of its own with " + instanceIDSetting + " (e.g. the pod name), " +
	"or accept rebalances on every restart with --allow-dynamic-membership")

// checkMembership warns when the instance has no group instance id and
// refuses to start when it can tell that others of its group run without
// one too: a live member without an id is still there after a session
// timeout (a crashed instance's member, e.g. this one's before a restart,
// is gone by then, so a single instance restarting is not refused). When
// the group cannot be described the check gives way: the service itself
// reports an unreachable broker.
func checkMembership(ctx context.Context, f *serviceFlags, log *zap.Logger) error {
	if f.instanceID != "" {
		return nil
	}
	log.Warn("no group instance id: every restart of this instance rebalances the whole group, and several instances "+
		"restarting together can leave partitions without progress for tens of seconds; set "+instanceIDSetting+
		" to a stable id unique to each instance (the Helm chart passes the pod name)",
		zap.String("setting", "group-instance-id"), zap.Bool("allow_dynamic_membership", f.allowDynamicMembership))
	if f.allowDynamicMembership {
		return nil
	}
	first, err := idlessMembers(ctx, f.kafka(), f.group)
	if err != nil {
		log.Warn("could not check the group for members without a group instance id", zap.Error(err))
		return nil
	}
	if len(first) == 0 {
		return nil
	}
	wait := f.sessionTimeout + 2*f.heartbeatInterval
	log.Info("the group has members without a group instance id; waiting a session timeout to tell live ones from crashed ones",
		zap.Int("members", len(first)), zap.Duration("wait", wait))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
	}
	again, err := idlessMembers(ctx, f.kafka(), f.group)
	if err != nil {
		log.Warn("could not check the group for members without a group instance id", zap.Error(err))
		return nil
	}
	if len(again) > 0 {
		return fmt.Errorf("%w (group %s, members without one: %d)", errDynamicMembers, f.group, len(again))
	}
	return nil
}

// idlessMembers lists the member ids of the group's members that have no
// group instance id. kafka-go's DescribeGroups leaves the instance id out,
// so the request is its protocol's own (DescribeGroups v4+ carries it).
func idlessMembers(ctx context.Context, k processor.Kafka, group string) ([]string, error) {
	cl, err := k.Client()
	if err != nil {
		return nil, err
	}
	defer processor.CloseClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := cl.Transport.RoundTrip(ctx, cl.Addr, &describegroups.Request{Groups: []string{group}})
	if err != nil {
		return nil, fmt.Errorf("describe group %s: %w", group, err)
	}
	r, ok := res.(*describegroups.Response)
	if !ok {
		return nil, fmt.Errorf("describe group %s: unexpected response %T", group, res)
	}
	var out []string
	for _, g := range r.Groups {
		if g.ErrorCode != 0 {
			return nil, fmt.Errorf("describe group %s: %w", group, kafkaError(g.ErrorCode))
		}
		for _, m := range g.Members {
			if m.GroupInstanceID == "" {
				out = append(out, m.MemberID)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// kafkaError is the kafka-go error of a protocol error code.
func kafkaError(code int16) error { return kafka.Error(code) }
