package chart

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/spindle-net/spindle/internal/buildinfo/buildmetric"
	"github.com/spindle-net/spindle/ipam/agent"
	"github.com/spindle-net/spindle/ipam/gc"
	"github.com/spindle-net/spindle/ipam/poolstatus"
	"github.com/spindle-net/spindle/test/prereq"
)

// dashboardFile is the dashboard the chart ships (grafanaDashboard.enabled).
const dashboardFile = "files/grafana/spindle-ipam.json"

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// exportedMetrics are the names the daemons export, from the collectors
// they register: the agent's registry, the controller's pool and garbage
// collector series, and the build information both add. A histogram or
// summary also exports its _bucket/_sum/_count series.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	var cs []prometheus.Collector
	cs = append(cs, agent.NewMetrics("test").Collectors()...)
	cs = append(cs, poolstatus.Collectors()...)
	cs = append(cs, gc.Collectors()...)
	cs = append(cs, buildmetric.Collector("test"))
	names := map[string]bool{}
	for _, c := range cs {
		descs := make(chan *prometheus.Desc, 256)
		c.Describe(descs)
		close(descs)
		for d := range descs {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			names[m[1]] = true
		}
		// Collect tells histograms and summaries (those with a sample now).
		metrics := make(chan prometheus.Metric, 1024)
		c.Collect(metrics)
		close(metrics)
		for m := range metrics {
			var pb dto.Metric
			if err := m.Write(&pb); err != nil {
				t.Fatal(err)
			}
			if pb.Histogram == nil && pb.Summary == nil {
				continue
			}
			name := fqName.FindStringSubmatch(m.Desc().String())[1]
			for _, suffix := range []string{"_sum", "_count"} {
				names[name+suffix] = true
			}
			if pb.Histogram != nil {
				names[name+"_bucket"] = true
			}
		}
	}
	for _, want := range []string{buildmetric.MetricName, "spindle_ipam_add_duration_seconds_bucket", "spindle_controller_ippool_total_ips"} {
		if !names[want] {
			t.Fatalf("the collectors do not export %s: %v", want, names)
		}
	}
	return names
}

// promqlWords are the identifiers of PromQL that are not metric names.
var promqlWords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "inf": true, "nan": true, "atan2": true}

var (
	stringLit   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	matchers    = regexp.MustCompile(`\{[^}]*\}`)
	ranges      = regexp.MustCompile(`\[[^\]]*\]`)
	labelGroups = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
)

// metricNames lists the metric names a PromQL expression selects: the
// identifiers left once strings, label matchers, ranges and label lists are
// cut, that are neither keywords, numbers nor function calls.
func metricNames(expr string) []string {
	s := stringLit.ReplaceAllString(expr, `""`)
	s = matchers.ReplaceAllString(s, " ")
	s = ranges.ReplaceAllString(s, " ")
	s = labelGroups.ReplaceAllString(s, " ")
	var out []string
	rs := []rune(s)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case unicode.IsDigit(r) || r == '.':
			for i < len(rs) && (unicode.IsLetter(rs[i]) || unicode.IsDigit(rs[i]) || rs[i] == '.' || rs[i] == '_') {
				i++
			}
		case unicode.IsLetter(r) || r == '_' || r == ':':
			j := i
			for j < len(rs) && (unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || rs[j] == '_' || rs[j] == ':') {
				j++
			}
			word := string(rs[i:j])
			k := j
			for k < len(rs) && unicode.IsSpace(rs[k]) {
				k++
			}
			call := k < len(rs) && rs[k] == '('
			if !call && !promqlWords[strings.ToLower(word)] {
				out = append(out, word)
			}
			i = j
		default:
			i++
		}
	}
	return out
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (le) (rate(a_bucket{op="x{y}"}[5m])))`: {"a_bucket"},
		`max by (pool) (a) / on (pool) group_left (subnet) max(b > 0) > 0.9`:    {"a", "b"},
		`sum without (instance) (rate(c_total[1h] offset 5m)) * 1e3`:            {"c_total"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %v, want %v", expr, got, want)
		}
	}
}

// grafanaVars stand for Grafana's interval variables in a query.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// dashboardExprs parses the dashboard and returns every panel's queries by
// panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir(t), dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("%s has no uid or title", dashboardFile)
	}
	out := map[string][]string{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has a query without expr", p.Title)
				continue
			}
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	return out
}

// TestDashboardQueriesExportedMetrics: the dashboard parses, has the panels
// operators look for, and every query selects only metrics the daemons
// export and is valid PromQL (promtool).
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	panels := dashboardExprs(t)
	needs := map[string]string{ // panel → a metric it must chart
		"Pool usage":                  "spindle_controller_ippool_total_ips",
		"ADD and DEL requests":        "spindle_ipam_del_duration_seconds_count",
		"Failures by reason":          "spindle_ipam_failures_total",
		"ADD latency":                 "spindle_ipam_add_duration_seconds_bucket",
		"Garbage collection releases": "spindle_controller_gc_released_ips_total",
		"Conflicts":                   "spindle_ipam_conflicts_total",
	}
	var all []string
	for title, exprs := range panels {
		for _, e := range exprs {
			names := metricNames(e)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q selects no metric", title, e)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("panel %q: query %q names %s, which neither daemon exports", title, e, n)
				}
			}
			all = append(all, grafanaVars.Replace(e))
		}
	}
	for title, metric := range needs {
		found := false
		for _, e := range panels[title] {
			found = found || slices.Contains(metricNames(e), metric)
		}
		if !found {
			t.Errorf("the dashboard has no panel %q charting %s", title, metric)
		}
	}
	// promtool parses each query as a recording rule's expression.
	var rules []map[string]any
	for i, e := range all {
		rules = append(rules, map[string]any{"record": fmt.Sprintf("spindle:dashboard_query_%d", i), "expr": e})
	}
	checkRules(t, map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
}

// TestPrometheusRulePassesPromtool renders the PrometheusRule and checks its
// groups with promtool, its expressions against the exported metrics, and
// that the thresholds come from values.
func TestPrometheusRulePassesPromtool(t *testing.T) {
	exported := exportedMetrics(t)
	if m := render(t); len(m.ofKind("PrometheusRule")) != 0 || len(m.ofKind("ConfigMap")) != 1 {
		t.Errorf("the default values render a PrometheusRule or a dashboard ConfigMap: both are opt-in")
	}
	// Fractions are numbers only through --set-json (--set makes them strings,
	// which the schema refuses).
	out, err := helm(t, "template", releaseName, chartDir(t), "--namespace", namespace, "--kube-version", kubeVersion,
		"--set", "prometheusRule.enabled=true", "--set", "prometheusRule.for=3m", "--set-json", "prometheusRule.poolUsageRatio=0.75",
		"--set-json", "prometheusRule.addFailuresPerSecond=0.2", "--set-json", "prometheusRule.addLatencyP99Seconds=0.5")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(out)
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest{objs: objs}
	rule := m.get(t, "PrometheusRule", "spindle")
	spec, _, _ := unstructured.NestedMap(rule.Object, "spec")
	checkRules(t, spec)

	groups, _, _ := unstructured.NestedSlice(spec, "groups")
	alerts := map[string]string{}
	for _, g := range groups {
		rs, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rs {
			rm := r.(map[string]any)
			alert, _ := rm["alert"].(string)
			expr, _ := rm["expr"].(string)
			alerts[alert] = expr
			if rm["for"] != "3m" {
				t.Errorf("alert %s: for %v, want prometheusRule.for (3m)", alert, rm["for"])
			}
			for _, n := range metricNames(expr) {
				if !exported[n] {
					t.Errorf("alert %s names %s, which neither daemon exports", alert, n)
				}
			}
		}
	}
	for alert, threshold := range map[string]string{"SpindlePoolAlmostFull": "> 0.75", "SpindleAddFailures": "> 0.2", "SpindleAddSlow": "> 0.5"} {
		expr, ok := alerts[alert]
		if !ok {
			t.Errorf("the PrometheusRule has no alert %s (has %v)", alert, alerts)
		} else if !strings.HasSuffix(strings.TrimSpace(expr), threshold) {
			t.Errorf("alert %s: expr %q does not end with the threshold from values (%s)", alert, expr, threshold)
		}
	}

	d := render(t, "grafanaDashboard.enabled=true").get(t, "ConfigMap", "spindle-grafana-dashboard")
	if d.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("the dashboard ConfigMap is not labelled grafana_dashboard: \"1\": %v", d.GetLabels())
	}
	data, _, _ := unstructured.NestedStringMap(d.Object, "data")
	want, err := os.ReadFile(filepath.Join(chartDir(t), dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(data["spindle-ipam.json"]) != strings.TrimSpace(string(want)) {
		t.Errorf("the dashboard ConfigMap does not carry %s as it is", dashboardFile)
	}
}

// promtoolBin returns the pinned promtool ($PROMTOOL overrides it).
func promtoolBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	p := filepath.Join(depPath(t, "promtool"), "promtool")
	if st, err := os.Stat(p); err != nil || st.IsDir() {
		prereq.Missing(t, "promtool is not built (%s missing): run `bash test/lab/tools/build-deps.sh promtool` (or make deps) or set PROMTOOL", p)
	}
	return p
}

// checkRules runs `promtool check rules` on a rule file's content.
func checkRules(t *testing.T, groups map[string]any) {
	t.Helper()
	promtool := promtoolBin(t)
	data, err := yaml.Marshal(groups)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules: %v\n%s\n%s", err, out, data)
	}
}

// TestMetricsDefaultToSecure: by default both daemons serve metrics over
// HTTPS behind the API server's authentication and authorization, the chart
// ships the ClusterRole a scraper needs and the ServiceMonitors scrape with
// a token; without metrics.secure both listen on loopback only.
func TestMetricsDefaultToSecure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		set                  []string
		secure               string
		agentAddr, ctrlAddr  string
		readerRole, monitors bool
	}{
		{nil, "true", "127.0.0.1:5711", ":5721", true, false},
		{[]string{"serviceMonitor.enabled=true", "agent.metrics.bindAddress=0.0.0.0"}, "true", "0.0.0.0:5711", ":5721", true, true},
		{[]string{"metrics.secure=false"}, "false", "127.0.0.1:5711", "127.0.0.1:5721", false, false},
	} {
		t.Run(strings.Join(tc.set, ","), func(t *testing.T) {
			m := render(t, tc.set...)
			af := m.flags(t, container(t, m.get(t, "DaemonSet", "spindle-agent"), "agent"))
			cf := m.flags(t, container(t, m.get(t, "Deployment", "spindle-controller"), "controller"))
			if af["metrics-secure"] != tc.secure || cf["metrics-secure"] != tc.secure {
				t.Errorf("--metrics-secure: agent %q, controller %q, want %q", af["metrics-secure"], cf["metrics-secure"], tc.secure)
			}
			if af["metrics-addr"] != tc.agentAddr || cf["metrics-bind-address"] != tc.ctrlAddr {
				t.Errorf("metrics addresses: agent %q, controller %q, want %q and %q", af["metrics-addr"], cf["metrics-bind-address"], tc.agentAddr, tc.ctrlAddr)
			}
			role := m.find("ClusterRole", "spindle-metrics-reader")
			if (role != nil) != tc.readerRole {
				t.Fatalf("ClusterRole spindle-metrics-reader rendered: %v, want %v", role != nil, tc.readerRole)
			}
			if role != nil {
				rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
				got, _ := json.Marshal(rules)
				if string(got) != `[{"nonResourceURLs":["/metrics"],"verbs":["get"]}]` {
					t.Errorf("ClusterRole spindle-metrics-reader grants %s, want get on /metrics only", got)
				}
			}
			sms := m.ofKind("ServiceMonitor")
			if (len(sms) == 2) != tc.monitors {
				t.Fatalf("%d ServiceMonitors rendered, want both: %v", len(sms), tc.monitors)
			}
			for _, sm := range sms {
				eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
				for _, ep := range eps {
					e := ep.(map[string]any)
					skip, _, _ := unstructured.NestedBool(e, "tlsConfig", "insecureSkipVerify")
					if e["scheme"] != "https" || e["bearerTokenFile"] == nil || !skip {
						t.Errorf("ServiceMonitor %s scrapes without HTTPS and a token: %v", sm.GetName(), e)
					}
				}
			}
		})
	}
}
