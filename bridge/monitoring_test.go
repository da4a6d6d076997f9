package bridge_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/scimbridge/scimbridge/bridge"
	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/ldapstore/ldaptest"
)

const (
	rulesFile     = "../etc/prometheus/scimbridge.rules.yml"
	rulesTestFile = "../etc/prometheus/scimbridge.rules.test.yml"
	dashboardFile = "../etc/grafana/scimbridge.json"
)

// promtoolHint says how to get promtool when it is missing.
const promtoolHint = "promtool is not installed: `make deps` installs it (Debian's prometheus package), or apt-get install prometheus"

// TestAlertingRules checks the rules with promtool and runs their unit tests: one firing case
// per alert, and the quiet cases that must not fire.
func TestAlertingRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip(promtoolHint)
	}
	out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command(promtool, "test", "rules", rulesTestFile).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "SUCCESS")

	// Every alert has a firing case in the unit tests.
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	data, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &rules))
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	data, err = os.ReadFile(rulesTestFile)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &tests))
	firing := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			require.True(t, firing[r.Alert], "alert %s has no firing case in %s", r.Alert, rulesTestFile)
		}
	}
	require.GreaterOrEqual(t, n, 9)
}

// exportedSeries starts a Bridge with every component (inbound, a provisioner and thus the
// change reader) and returns the names of the series its registry exports, histogram and
// summary suffixes included: from the collectors' descriptions, so that a series with no
// sample yet (an error counter) counts too.
func exportedSeries(t *testing.T) map[string]bool {
	t.Helper()
	s := ldaptest.Shared(t)
	cfg := bridge.DaemonTestConfig(t, s, `[inbound]
listen = "127.0.0.1:0"
[[inbound.token]]
name = "entra"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
[ha]
enabled = true
`)
	reg := prometheus.NewRegistry()
	b, err := bridge.New(bridge.Options{Config: cfg, Logger: zerolog.Nop(), Registry: reg})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.Start(ctx))
	defer func() { require.NoError(t, b.Stop(context.Background())) }()
	// The provisioning side registers its collectors as it starts; wait for its gauges.
	families := func() []*dto.MetricFamily {
		mf, err := reg.Gather()
		require.NoError(t, err)
		return mf
	}
	deadline := time.Now().Add(30 * time.Second)
	for !hasFamily(families(), "scimbridge_outbound_outbox_depth") {
		require.False(t, time.Now().After(deadline), "the outbound gauges never appeared")
		time.Sleep(50 * time.Millisecond)
	}

	types := map[string]dto.MetricType{}
	for _, f := range families() {
		types[f.GetName()] = f.GetType()
	}
	descs := make(chan *prometheus.Desc, 1024)
	go func() { reg.Describe(descs); close(descs) }()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range descs {
		m := fqName.FindStringSubmatch(d.String())
		require.NotNil(t, m, d.String())
		name := m[1]
		names[name] = true
		typ, gathered := types[name]
		if !gathered || typ == dto.MetricType_HISTOGRAM || typ == dto.MetricType_SUMMARY {
			for _, sfx := range []string{"_bucket", "_sum", "_count"} {
				if typ != dto.MetricType_SUMMARY || sfx != "_bucket" {
					names[name+sfx] = true
				}
			}
		}
	}
	return names
}

func hasFamily(mf []*dto.MetricFamily, name string) bool {
	for _, f := range mf {
		if f.GetName() == name {
			return true
		}
	}
	return false
}

var (
	promqlStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promqlMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promqlRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promqlGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlVariables = regexp.MustCompile(`\$\w+`)
	labelValues     = regexp.MustCompile(`label_values\(([^,()]*),[^()]*\)`) // Grafana: label_values(series, label)
	promqlIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlKeywords  = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true}
)

// seriesNames returns the metric names a PromQL expression (or a Grafana label_values query)
// selects: the identifiers left once strings, label matchers, ranges, groupings and
// variables are removed, that are not function calls or keywords.
func seriesNames(expr string) []string {
	e := promqlStrings.ReplaceAllString(expr, `""`)
	e = promqlMatchers.ReplaceAllString(e, " ")
	e = labelValues.ReplaceAllString(e, "$1")
	e = promqlRanges.ReplaceAllString(e, " ")
	e = promqlGrouping.ReplaceAllString(e, " ")
	e = promqlVariables.ReplaceAllString(e, " ")
	var out []string
	for _, loc := range promqlIdent.FindAllStringIndex(e, -1) {
		name := e[loc[0]:loc[1]]
		rest := strings.TrimLeft(e[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || promqlKeywords[name] {
			continue
		}
		if loc[0] > 0 && (e[loc[0]-1] >= '0' && e[loc[0]-1] <= '9' || e[loc[0]-1] == '.') {
			continue // a unit or exponent after a number, e.g. 1e3
		}
		out = append(out, name)
	}
	return out
}

func TestSeriesNames(t *testing.T) {
	require.Equal(t, []string{"scimbridge_inbound_requests_total", "scimbridge_inbound_requests_total"},
		seriesNames(`sum by (instance) (rate(scimbridge_inbound_requests_total{status=~"5.."}[5m])) / sum by (instance) (rate(scimbridge_inbound_requests_total[$__rate_interval])) > 0.05`))
	require.Equal(t, []string{"scimbridge_ldap_up"}, seriesNames(`label_values(scimbridge_ldap_up{job=~"$job"}, instance)`))
	require.Equal(t, []string{"a_seconds", "a_seconds"}, seriesNames(`a_seconds - time() < 14 * 86400 and a_seconds > 0`))
}

// TestDashboardAndRulesNameExportedSeries checks that every query of the Grafana dashboard
// (panels and variables) and every alerting rule names only series a running Bridge exports.
func TestDashboardAndRulesNameExportedSeries(t *testing.T) {
	exported := exportedSeries(t)
	require.True(t, exported["scimbridge_inbound_request_duration_seconds_bucket"])
	require.True(t, exported["scimbridge_ldap_operation_errors_total"], "described even before the first error")

	check := func(where, expr string, allowed ...string) {
		t.Helper()
		names := seriesNames(expr)
		require.NotEmpty(t, names, "%s: %q names no series", where, expr)
		for _, n := range names {
			require.True(t, exported[n] || contains(allowed, n), "%s: %q names %q, which scimbridge does not export", where, expr, n)
		}
	}

	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	data, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &dash))
	queries := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			check("panel "+p.Title, tg.Expr)
			queries++
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		require.NoError(t, json.Unmarshal(v.Query, &q))
		check("variable "+v.Name, q.Query)
	}
	require.GreaterOrEqual(t, queries, 20)

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	data, err = os.ReadFile(rulesFile)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &rules))
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			check("alert "+r.Alert, r.Expr, "up") // up is Prometheus' own series for the scrape
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestStateFileMetrics: while the provisioning side runs, the state file's size and free space
// are exported, the size being the file's.
func TestStateFileMetrics(t *testing.T) {
	s := ldaptest.Shared(t)
	cfg := bridge.DaemonTestConfig(t, s, "")
	reg := prometheus.NewRegistry()
	b, err := bridge.New(bridge.Options{Config: cfg, Logger: zerolog.Nop(), Registry: reg})
	require.NoError(t, err)
	gauge := func(name string) (float64, bool) {
		mf, err := reg.Gather()
		require.NoError(t, err)
		for _, f := range mf {
			if f.GetName() == name && len(f.GetMetric()) == 1 {
				return f.GetMetric()[0].GetGauge().GetValue(), true
			}
		}
		return 0, false
	}
	_, ok := gauge("scimbridge_state_file_size_bytes")
	require.False(t, ok, "no state file open before the start")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.Start(ctx))
	defer func() { require.NoError(t, b.Stop(context.Background())) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := gauge("scimbridge_state_file_size_bytes"); ok {
			break
		}
		require.False(t, time.Now().After(deadline), "the state file gauges never appeared")
		time.Sleep(50 * time.Millisecond)
	}
	size, _ := gauge("scimbridge_state_file_size_bytes")
	free, ok := gauge("scimbridge_state_file_free_bytes")
	require.True(t, ok)
	info, err := os.Stat(filepath.Join(cfg.State.Dir, state.FileName))
	require.NoError(t, err)
	require.Positive(t, size)
	require.LessOrEqual(t, size, float64(info.Size()))
	require.Less(t, free, size)
}
