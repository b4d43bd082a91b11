package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"gopkg.in/yaml.v3"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// docs/asyncapi.yaml is the topic contract downstream teams read. These
// tests hold it to the code: the topics and their value schemas
// (processor.Subjects), the topic settings `enricher topics create` gives
// (read back from a broker), the header names the code writes (its
// constants) and the headers a running service really puts on each topic.

const asyncAPIPath = "../../docs/asyncapi.yaml"

// topicContract is what the document says about one topic.
type topicContract struct {
	channel    string
	types      map[string]bool // Avro full names of the non-null payloads
	headers    map[string]bool
	config     map[string]string // cleanup.policy as "compact,delete", retention.ms, ...
	partitions int               // 0: not stated
	send, recv int               // operations
}

// codeTopics is the code's side: per topic, the value type, the headers it
// writes there, the settings it creates the topic with and, for topics
// with a fixed count, the partitions.
type codeTopic struct {
	valueType  schemas.Type
	headers    []string
	config     map[string]string
	partitions int
}

// Header names the code writes, per default topic. The names are the code's
// constants; where each goes is read off the writers (handler.go,
// partition.go, deadletter.go, processor/admin/deadletters.go).
func codeHeaders(t processor.Topics) map[string][]string {
	return map[string][]string{
		t.Profiles: {admin.HeaderReplayOf, processor.HeaderReplayCount},
		t.Enriched: {processor.HeaderState},
		t.DeadLetters: {processor.HeaderErrTopic, processor.HeaderErrPartition, processor.HeaderErrOffset, processor.HeaderErrStage,
			processor.HeaderErrClass, processor.HeaderErrMessage, processor.HeaderErrReason, processor.HeaderReplayable,
			admin.HeaderReceipt, admin.HeaderReplayID, processor.HeaderReplayCount, admin.HeaderReplayTo, admin.HeaderReplayAt, admin.HeaderReplayBy},
	}
}

// topicSettings are the settings `enricher topics create` may set.
var topicSettings = []string{"cleanup.policy", "retention.ms", "message.timestamp.type"}

func loadAsyncAPI(t testing.TB, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if v := fmt.Sprint(doc["asyncapi"]); !strings.HasPrefix(v, "3.") {
		t.Fatalf("%s: asyncapi %q, want 3.x", path, v)
	}
	return doc
}

// resolve follows a local $ref ("#/components/messages/X") in doc.
func resolve(t testing.TB, doc map[string]any, v any) map[string]any {
	m, _ := v.(map[string]any)
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	if !strings.HasPrefix(ref, "#/") {
		return m
	}
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		next, _ := cur.(map[string]any)
		if next == nil || next[part] == nil {
			t.Errorf("$ref %s does not resolve", ref)
			return nil
		}
		cur = next[part]
	}
	return resolve(t, doc, cur)
}

func mapOf(v any) map[string]any { m, _ := v.(map[string]any); return m }

// avroName is the full name of the record in an .avsc file.
func avroName(t testing.TB, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("schema %s: %v", path, err)
		return ""
	}
	var s struct{ Name, Namespace string }
	if err := json.Unmarshal(b, &s); err != nil {
		t.Errorf("schema %s: %v", path, err)
		return ""
	}
	if s.Namespace == "" {
		return s.Name
	}
	return s.Namespace + "." + s.Name
}

// readContract flattens the document per topic address.
func readContract(t testing.TB, doc map[string]any, dir string) map[string]*topicContract {
	t.Helper()
	out := map[string]*topicContract{}
	byChannel := map[string]*topicContract{}
	for name, raw := range mapOf(doc["channels"]) {
		ch := mapOf(raw)
		addr, _ := ch["address"].(string)
		tc := &topicContract{channel: name, types: map[string]bool{}, headers: map[string]bool{}, config: map[string]string{}}
		if out[addr] != nil {
			t.Errorf("channels %s and %s both have address %q", out[addr].channel, name, addr)
		}
		out[addr], byChannel[name] = tc, tc
		kb := mapOf(mapOf(ch["bindings"])["kafka"])
		if topic, ok := kb["topic"]; ok && topic != addr {
			t.Errorf("channel %s: address %s, kafka binding topic %v", name, addr, topic)
		}
		if p, ok := kb["partitions"].(int); ok {
			tc.partitions = p
		}
		cfg := map[string]any{}
		for k, v := range mapOf(kb["topicConfiguration"]) {
			cfg[k] = v
		}
		for k, v := range mapOf(ch["x-topic-configuration"]) {
			cfg[k] = v
		}
		for k, v := range cfg {
			switch v := v.(type) {
			case []any:
				parts := make([]string, len(v))
				for i, p := range v {
					parts[i] = fmt.Sprint(p)
				}
				tc.config[k] = strings.Join(parts, ",")
			default:
				tc.config[k] = fmt.Sprint(v)
			}
		}
		for mname, mraw := range mapOf(ch["messages"]) {
			msg := resolve(t, doc, mraw)
			if msg == nil {
				continue
			}
			payload := mapOf(msg["payload"])
			if payload["type"] == "null" {
				// a tombstone or a receipt
			} else {
				if f := fmt.Sprint(payload["schemaFormat"]); f != "application/vnd.apache.avro;version=1.9.0" {
					t.Errorf("channel %s message %s: schemaFormat %q, want application/vnd.apache.avro;version=1.9.0", name, mname, f)
				}
				ref, _ := mapOf(payload["schema"])["$ref"].(string)
				if ref == "" {
					t.Errorf("channel %s message %s: the payload is no $ref to an .avsc file", name, mname)
				} else if n := avroName(t, filepath.Join(dir, ref)); n != "" {
					tc.types[n] = true
				}
			}
			for h := range mapOf(resolve(t, doc, msg["headers"])["properties"]) {
				tc.headers[h] = true
			}
		}
	}
	for name, raw := range mapOf(doc["operations"]) {
		op := mapOf(raw)
		ch := resolve(t, doc, op["channel"])
		ref, _ := mapOf(op["channel"])["$ref"].(string)
		tc := byChannel[strings.TrimPrefix(ref, "#/channels/")]
		if ch == nil || tc == nil {
			t.Errorf("operation %s: channel %q is no channel", name, ref)
			continue
		}
		switch op["action"] {
		case "send":
			tc.send++
		case "receive":
			tc.recv++
		default:
			t.Errorf("operation %s: action %v, want send or receive", name, op["action"])
		}
	}
	return out
}

// codeContract is the code's truth: the topics it creates on a broker (the
// embedded one), read back with their settings.
func codeContract(t testing.TB) map[string]*codeTopic {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stack, err := embedded.Start(ctx, embedded.Options{Programs: []simulator.ProgramConfig{{ID: "acme", Tokens: []string{acmeToken}, TPS: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close()
	topics := processor.Topics{}.WithDefaults()
	if stack.Topics != topics {
		t.Fatalf("the embedded stack's topics %+v are not the defaults %+v", stack.Topics, topics)
	}
	out := map[string]*codeTopic{}
	for typ, subject := range processor.Subjects(topics) {
		topic := strings.TrimSuffix(subject, "-value")
		out[topic] = &codeTopic{valueType: typ, config: map[string]string{}}
	}
	for topic, hs := range codeHeaders(topics) {
		out[topic].headers = hs
	}
	cl, err := stack.Kafka.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer processor.CloseClient(cl)
	var rs []kafka.DescribeConfigRequestResource
	for topic := range out {
		rs = append(rs, kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: topicSettings})
	}
	res, err := cl.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: rs})
	if err != nil {
		t.Fatal(err)
	}
	const dynamicTopicConfig = 1 // set on the topic, not a broker default
	for _, r := range res.Resources {
		for _, c := range r.ConfigEntries {
			if c.ConfigSource == dynamicTopicConfig && slices.Contains(topicSettings, c.ConfigName) {
				out[r.ResourceName].config[c.ConfigName] = c.ConfigValue
			}
		}
	}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range md.Topics {
		if ct := out[mt.Name]; ct != nil && len(mt.Partitions) == 1 {
			ct.partitions = 1 // fixed by the code (the data topics get the operator's count)
		}
	}
	return out
}

// checkAsyncAPI reports every difference between the document and the code.
func checkAsyncAPI(t testing.TB, doc map[string]*topicContract, code map[string]*codeTopic) {
	t.Helper()
	for topic := range doc {
		if code[topic] == nil {
			t.Errorf("the document describes topic %q, which the code does not use", topic)
		}
	}
	written := map[string]bool{}
	for _, ct := range code {
		for _, h := range ct.headers {
			written[h] = true
		}
	}
	for _, topic := range sortedTopics(code) {
		ct, dc := code[topic], doc[topic]
		if dc == nil {
			t.Errorf("topic %s is missing from the document", topic)
			continue
		}
		want := string(ct.valueType)
		if !dc.types[want] || len(dc.types) != 1 {
			t.Errorf("topic %s: the document's payloads are %v, the code writes %s", topic, keys(dc.types), want)
		}
		for _, h := range ct.headers {
			if !dc.headers[h] {
				t.Errorf("topic %s: header %s, which the code writes there, is missing from the document", topic, h)
			}
		}
		for h := range dc.headers {
			if !written[h] {
				t.Errorf("topic %s: the document names header %s, which the code never writes", topic, h)
			}
		}
		for _, k := range topicSettings {
			if dc.config[k] != ct.config[k] {
				t.Errorf("topic %s: %s is %q in the document, %q as created by the code", topic, k, dc.config[k], ct.config[k])
			}
		}
		if dc.partitions != ct.partitions {
			t.Errorf("topic %s: the document says %d partitions, the code creates %d (0: the operator's count)", topic, dc.partitions, ct.partitions)
		}
		if dc.send == 0 || dc.recv == 0 {
			t.Errorf("topic %s: %d send and %d receive operations; who publishes and who subscribes must both be said", topic, dc.send, dc.recv)
		}
	}
}

func sortedTopics[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestAsyncAPIDescribesEveryTopicSchemaAndHeader(t *testing.T) {
	doc := loadAsyncAPI(t, asyncAPIPath)
	checkAsyncAPI(t, readContract(t, doc, filepath.Dir(asyncAPIPath)), codeContract(t))
}

// The check must be able to fail: each mismatch is reported.
func TestAsyncAPICheckFails(t *testing.T) {
	code := codeContract(t)
	// Beside the document: its schemas are referred to by relative paths.
	failsOnEach(t, asyncAPIPath, true, map[string]mutation{
		"a topic renamed":     {"address: enrichment-status", "address: enrichment-statuses", "topic enrichment-status is missing"},
		"a schema swapped":    {"$ref: ../schemas/bulk_in_flight.avsc", "$ref: ../schemas/dead_letter.avsc", "topic enrichment-journal: the document's payloads"},
		"a header dropped":    {"          __connect.errors.offset:", "          x-offset:", "header __connect.errors.offset, which the code writes"},
		"a stale header":      {"        enricher.state:", "        enricher.status:", "never writes"},
		"a cleanup policy":    {"cleanup.policy: [delete]", "cleanup.policy: [compact]", "enrichment-dlq: cleanup.policy"},
		"a retention":         {"retention.ms: 86400000", "retention.ms: 3600000", "retention.ms"},
		"the timestamp type":  {"message.timestamp.type: LogAppendTime", "message.timestamp.type: CreateTime", "message.timestamp.type"},
		"no reader":           {"  readJournal:\n    action: receive", "  readJournal:\n    action: send", "receive operations"},
		"a partition count":   {"        topic: enrichment-journal\n        partitions: 1", "        topic: enrichment-journal", "partitions"},
		"the schema's format": {"version=1.9.0\n        schema:\n          $ref: ../schemas/control_event.avsc", "version=1.8.0\n        schema:\n          $ref: ../schemas/control_event.avsc", "schemaFormat"},
	}, func(_ *testing.T, rec *recorder, path string) {
		rec.run(func() {
			doc := loadAsyncAPI(rec, path)
			checkAsyncAPI(rec, readContract(rec, doc, filepath.Dir(path)), code)
		})
	})
}
