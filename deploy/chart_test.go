package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The chart is rendered with Helm's own engine, as `helm template` does, and
// every object it renders is decoded strictly (unknown or misspelt fields
// fail) into the Kubernetes API types of k8s.io/api. The rendering with every
// option on is kept in helm/rendered.yaml, which the service's module reads
// to check the settings against the flags `enricher run` really has
// (cmd/enricher/chart_test.go); this test fails when that file is stale
// (go test -update writes it again).

var update = flag.Bool("update", false, "write helm/rendered.yaml again")

const (
	chartDir     = "helm/leadspace-enricher"
	renderedPath = "helm/rendered.yaml"
)

// everything turns every optional part of the chart on.
var everything = map[string]any{
	"admin":          map[string]any{"publicKeys": "ed25519:AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample"},
	"tokenSealKey":   map[string]any{"secretName": "enricher-token-seal-key"},
	"leadspace":      map[string]any{"url": "https://gateway.leadspace.com"},
	"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}},
	"prometheusRule": map[string]any{"enabled": true},
	"console": map[string]any{"publicURL": "https://enricher.example.com", "oidc": map[string]any{
		"issuer": "https://login.example.com", "clientID": "enricher-console", "clientSecretName": "enricher-oidc"}},
}

// render renders the chart with values over its defaults, in file order.
func render(t *testing.T, values map[string]any) string {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := util.ToRenderValues(ch, values, common.ReleaseOptions{Name: "leadspace-enricher", Namespace: "enrichment", IsInstall: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(out))
	for n := range out {
		if strings.HasSuffix(n, ".yaml") && strings.TrimSpace(out[n]) != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", n, strings.TrimSpace(out[n]))
	}
	return b.String()
}

// objects splits a rendering into its documents, skipping empty ones.
func objects(t testing.TB, rendered string) [][]byte {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(rendered)))
	var out [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			t.Fatalf("a rendered document is no YAML: %v\n%s", err, doc)
		}
		if len(probe) > 0 {
			out = append(out, doc)
		}
	}
}

// validate decodes each object strictly into its API type and checks
// what the API server would refuse first: names and label values.
func validate(t testing.TB, rendered string) map[string]k8sruntime.Object {
	t.Helper()
	scheme := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
	out := map[string]k8sruntime.Object{}
	for _, doc := range objects(t, rendered) {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec map[string]any `json:"spec"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		id := meta.Kind + "/" + meta.Metadata.Name
		for _, e := range validation.IsDNS1123Subdomain(meta.Metadata.Name) {
			t.Errorf("%s: name: %s", id, e)
		}
		for k, v := range meta.Metadata.Labels {
			for _, e := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
				t.Errorf("%s: label %s=%s: %s", id, k, v, e)
			}
		}
		if meta.APIVersion == "monitoring.coreos.com/v1" {
			// Prometheus Operator types are not in k8s.io/api: check the shape.
			if len(meta.Spec) == 0 {
				t.Errorf("%s has no spec", id)
			}
			out[id] = nil
			continue
		}
		obj, _, err := strict.Decode(doc, nil, nil)
		if err != nil {
			t.Errorf("%s does not decode strictly as %s: %v", id, meta.APIVersion, err)
			continue
		}
		out[id] = obj
	}
	return out
}

func TestChartRendersValidObjects(t *testing.T) {
	for name, values := range map[string]map[string]any{"defaults": nil, "everything on": everything} {
		t.Run(name, func(t *testing.T) {
			objs := validate(t, render(t, values))
			for _, want := range []string{"StatefulSet/leadspace-enricher", "Service/leadspace-enricher", "PodDisruptionBudget/leadspace-enricher",
				"ConfigMap/leadspace-enricher-admin-keys", "Deployment/leadspace-enricher-console", "Service/leadspace-enricher-console"} {
				if _, ok := objs[want]; !ok {
					t.Errorf("the chart renders no %s (it renders %v)", want, keys(objs))
				}
			}
			_, monitor := objs["ServiceMonitor/leadspace-enricher"]
			_, rule := objs["PrometheusRule/leadspace-enricher"]
			if monitor != (values != nil) || rule != (values != nil) {
				t.Errorf("ServiceMonitor %v, PrometheusRule %v: they must be there exactly when enabled", monitor, rule)
			}
			sts := objs["StatefulSet/leadspace-enricher"].(*appsv1.StatefulSet)
			checkStatefulSet(t, sts)
			pdb := objs["PodDisruptionBudget/leadspace-enricher"].(*policyv1.PodDisruptionBudget)
			if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
				t.Errorf("the PodDisruptionBudget allows %v unavailable, want 1", pdb.Spec.MaxUnavailable)
			}
			for k, v := range pdb.Spec.Selector.MatchLabels {
				if sts.Spec.Template.Labels[k] != v {
					t.Errorf("the PodDisruptionBudget selects %s=%s, which the StatefulSet's pods do not carry", k, v)
				}
			}
		})
	}
}

// checkStatefulSet: static membership from the pod name, probes, resources.
func checkStatefulSet(t testing.TB, sts *appsv1.StatefulSet) {
	t.Helper()
	c := sts.Spec.Template.Spec.Containers[0]
	var fromPod bool
	for _, e := range c.Env {
		if e.Name == "ENRICHER_GROUP_INSTANCE_ID" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			fromPod = true
		}
	}
	if !fromPod {
		t.Error("the pod template does not pass the pod's name as ENRICHER_GROUP_INSTANCE_ID")
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v, want GET /readyz", p)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v, want GET /healthz", p)
	}
	if sts.Spec.ServiceName == "" {
		t.Error("the StatefulSet names no governing Service")
	}
	lim, req := c.Resources.Limits.Memory(), c.Resources.Requests.Memory()
	if lim.IsZero() || req.IsZero() || req.Cmp(*lim) > 0 {
		t.Errorf("memory request %s, limit %s", req, lim)
	}
}

// The PrometheusRule ships the very rules promtool checks.
func TestChartAlertRulesAreTheCheckedOnes(t *testing.T) {
	a, err := os.ReadFile("prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(chartDir, "files/alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%s/files/alerts.yaml differs from prometheus/alerts.yaml: copy it (cp deploy/prometheus/alerts.yaml %s/files/)", chartDir, "deploy/"+chartDir)
	}
}

// helm/rendered.yaml is the chart as rendered with everything on.
func TestChartRenderingIsCurrent(t *testing.T) {
	got := "# Rendered by deploy/chart_test.go (go test -update) from helm/leadspace-enricher with every option on;\n" +
		"# cmd/enricher/chart_test.go checks it against the flags of enricher run. Do not edit.\n" + render(t, everything)
	if *update {
		if err := os.WriteFile(renderedPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(renderedPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Fatalf("%s is stale: run (cd deploy && go test -run TestChartRenderingIsCurrent -update)", renderedPath)
	}
}

// The checks must be able to fail: a chart that drops the pod name or
// misspells a field is refused.
func TestChartCheckFails(t *testing.T) {
	rendered := render(t, nil)
	for _, tc := range []struct{ from, to, want string }{
		{"fieldPath: metadata.name", "fieldPath: metadata.namespace", "ENRICHER_GROUP_INSTANCE_ID"},
		{"path: /readyz", "path: /ready", "readiness probe"},
		{"readinessProbe:", "readinesProbe:", "does not decode strictly"},
		{"maxUnavailable: 1", "maxUnavailable: 2", "allows 2 unavailable"},
	} {
		if !strings.Contains(rendered, tc.from) {
			t.Fatalf("the rendering no longer contains %q; update this test", tc.from)
		}
		mutated := strings.Replace(rendered, tc.from, tc.to, 1)
		rec := &recorder{TB: t}
		rec.check(func(t testing.TB) {
			objs := validate(t, mutated)
			if sts, ok := objs["StatefulSet/leadspace-enricher"].(*appsv1.StatefulSet); ok {
				checkStatefulSet(t, sts)
			}
			if pdb, ok := objs["PodDisruptionBudget/leadspace-enricher"].(*policyv1.PodDisruptionBudget); ok && pdb.Spec.MaxUnavailable.IntValue() != 1 {
				t.Errorf("the PodDisruptionBudget allows %d unavailable", pdb.Spec.MaxUnavailable.IntValue())
			}
		})
		if !rec.found(tc.want) {
			t.Errorf("%q -> %q: not reported as %q; reported %q", tc.from, tc.to, tc.want, rec.errs)
		}
	}
}

// recorder collects what a check reports instead of failing the test; a
// Fatal ends only the check's goroutine.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Error(args ...any)                 { r.errs = append(r.errs, fmt.Sprint(args...)) }
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...); runtime.Goexit() }
func (r *recorder) Fatal(args ...any)                 { r.Error(args...); runtime.Goexit() }

func (r *recorder) check(f func(t testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
}

func (r *recorder) found(s string) bool {
	for _, e := range r.errs {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
