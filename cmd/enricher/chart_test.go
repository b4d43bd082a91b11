package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The Helm chart (deploy/helm/leadspace-enricher) is rendered with Helm's
// engine and schema-checked in its own module (deploy/chart_test.go, which
// keeps deploy/helm/rendered.yaml current). Here the rendering is held to
// the commands it runs, as docker-compose.yml is: every ENRICHER_* variable
// must be one the command reads, the values must parse, and the service's
// pods must be static members named after themselves.

const chartRenderedPath = "../../deploy/helm/rendered.yaml"

type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Template struct {
			Spec struct {
				Containers []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name  string   `yaml:"name"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string         `yaml:"name"`
		Value     *string        `yaml:"value"`
		ValueFrom map[string]any `yaml:"valueFrom"`
	} `yaml:"env"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// workloads are the rendering's StatefulSets and Deployments.
func workloads(t testing.TB, path string) []k8sObject {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var out []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o.Kind == "StatefulSet" || o.Kind == "Deployment" {
			out = append(out, o)
		}
	}
}

var helpEnv = regexp.MustCompile(`\(env (ENRICHER_[A-Z0-9_]+),`)

// commandEnv is what `enricher <command> -h` says the command reads; ok is
// false when this build has no such command.
func commandEnv(t testing.TB, command string) (map[string]bool, bool) {
	t.Helper()
	out, err := exec.Command(enricherBin, command, "-h").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "unknown command") {
			return nil, false
		}
		t.Fatalf("enricher %s -h: %v\n%s", command, err, out)
	}
	env := map[string]bool{}
	for _, m := range helpEnv.FindAllStringSubmatch(string(out), -1) {
		env[m[1]] = true
	}
	return env, true
}

// mebibytes reads a Kubernetes memory quantity in Ki, Mi or Gi.
func mebibytes(q string) (float64, error) {
	for suffix, mult := range map[string]float64{"Ki": 1.0 / 1024, "Mi": 1, "Gi": 1024} {
		if v, ok := strings.CutSuffix(q, suffix); ok {
			n, err := strconv.ParseFloat(v, 64)
			return n * mult, err
		}
	}
	n, err := strconv.ParseFloat(q, 64)
	return n / (1 << 20), err
}

// checkChart reports every way the rendering and the commands disagree.
func checkChart(t testing.TB, objs []k8sObject) {
	t.Helper()
	services := 0
	for _, o := range objs {
		for _, c := range o.Spec.Template.Spec.Containers {
			id := o.Kind + "/" + o.Metadata.Name + " container " + c.Name
			if len(c.Args) < 2 || filepath.Base(c.Args[0]) != "enricher" {
				t.Errorf("%s runs %v, not an enricher command", id, c.Args)
				continue
			}
			command := c.Args[1]
			readable, known := commandEnv(t, command)
			if !known {
				t.Logf("%s runs 'enricher %s', which this build does not have: its settings are not checked", id, command)
				continue
			}
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, "ENRICHER_") && !readable[e.Name] {
					t.Errorf("%s sets %s, which 'enricher %s' does not read", id, e.Name, command)
				}
			}
			if command == "run" {
				services++
				checkRunContainer(t, id, c)
			}
		}
	}
	if services == 0 {
		t.Error("no workload runs 'enricher run'")
	}
}

// checkRunContainer: the settings parse as `enricher run` parses them, the
// group instance id is the pod's name, probes and resources fit the service.
func checkRunContainer(t testing.TB, id string, c k8sContainer) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "ENRICHER_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	var f serviceFlags
	s := newSettings("run")
	f.bind(s)
	s.SetOutput(io.Discard)
	fromPod := false
	for _, e := range c.Env {
		switch {
		case e.Value != nil:
			os.Setenv(e.Name, *e.Value)
			defer os.Unsetenv(e.Name)
		case e.Name == "ENRICHER_GROUP_INSTANCE_ID":
			if ref, _ := e.ValueFrom["fieldRef"].(map[string]any); ref != nil && ref["fieldPath"] == "metadata.name" {
				fromPod = true
				os.Setenv(e.Name, "leadspace-enricher-0")
				defer os.Unsetenv(e.Name)
			}
		}
	}
	if !fromPod {
		t.Errorf("%s does not take ENRICHER_GROUP_INSTANCE_ID from the pod's name (valueFrom.fieldRef metadata.name): without it every restart rebalances the group", id)
	}
	if err := s.parse(nil); err != nil {
		t.Errorf("%s: 'enricher run' would refuse its settings: %v", id, err)
		return
	}
	for _, n := range enricherCommands["run"].required {
		if strings.TrimSpace(s.Lookup(n).Value.String()) == "" {
			t.Errorf("%s runs 'enricher run' without %s", id, EnvName(n))
		}
	}
	_, port := hostPort(t, id+" http-addr", f.httpAddr)
	served := map[string]bool{port: true}
	published := false
	for _, p := range c.Ports {
		served[p.Name] = served[strconv.Itoa(p.ContainerPort)]
		published = published || served[p.Name]
	}
	if !published {
		t.Errorf("%s serves HTTP on port %s, which is none of its container ports", id, port)
	}
	for name, probe := range map[string]*k8sProbe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != name {
			t.Errorf("%s: no probe GET %s", id, name)
		} else if !served[fmt.Sprint(probe.HTTPGet.Port)] {
			t.Errorf("%s: the %s probe asks port %v, the service serves %s", id, name, probe.HTTPGet.Port, port)
		}
	}
	limit, err1 := mebibytes(c.Resources.Limits["memory"])
	request, err2 := mebibytes(c.Resources.Requests["memory"])
	soft := float64(f.memoryLimit) / (1 << 20)
	switch {
	case err1 != nil || err2 != nil:
		t.Errorf("%s: memory request %q, limit %q", id, c.Resources.Requests["memory"], c.Resources.Limits["memory"])
	case f.memoryLimit <= 0 || soft > request || request > limit:
		t.Errorf("%s: ENRICHER_MEMORY_LIMIT %.0f MiB, memory request %.0f MiB, limit %.0f MiB: the soft limit must be set, at most the request, at most the limit",
			id, soft, request, limit)
	}
}

func TestChartRunsStaticMembersWithSettingsTheServiceReads(t *testing.T) {
	checkChart(t, workloads(t, chartRenderedPath))
}

// The check must be able to fail.
func TestChartCheckFailsOnAMismatch(t *testing.T) {
	failsOnEach(t, chartRenderedPath, false, map[string]mutation{
		"a misspelt variable":   {"- name: ENRICHER_GROUP\n", "- name: ENRICHER_GROUP_NAME\n", "does not read"},
		"no pod name":           {"fieldPath: metadata.name", "fieldPath: metadata.uid", "from the pod's name"},
		"a bad value":           {"- name: ENRICHER_SHUTDOWN_TIMEOUT\n              value: \"20s\"", "- name: ENRICHER_SHUTDOWN_TIMEOUT\n              value: \"twenty\"", "would refuse"},
		"memory over the limit": {"value: \"234881024\"", "value: \"434881024\"", "ENRICHER_MEMORY_LIMIT"},
		"a probe elsewhere":     {"path: /readyz", "path: /ready", "no probe GET /readyz"},
		"another port":          {"value: \":8080\"", "value: \":9090\"", "none of its container ports"},
	}, func(_ *testing.T, rec *recorder, path string) {
		rec.run(func() { checkChart(rec, workloads(rec, path)) })
	})
}
