package interop

// contrib/prometheus/derpd-alerts.yml and contrib/grafana/derpd.json:
// well-formed, and built only on names a real derpd exports.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	yaml "go.yaml.in/yaml/v2"
)

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleFile struct {
	Groups []struct {
		Name  string      `yaml:"name"`
		Rules []alertRule `yaml:"rules"`
	} `yaml:"groups"`
}

type grafanaDashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		GridPos struct {
			H, W, X, Y int
		} `json:"gridPos"`
		Datasource *struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
}

var (
	reQuoted   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	reRange    = regexp.MustCompile(`\[[^\]]*\]`)
	reGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	reMatchers = regexp.MustCompile(`\{[^}]*\}`)
	reIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	reNumber   = regexp.MustCompile(`\b[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?(?:ms|s|m|h|d|w|y)?\b`)
)

// promqlWords are PromQL's functions, aggregations and keywords used in
// contrib/ (anything else in an expression must be a metric name).
var promqlWords = map[string]bool{
	"sum": true, "max": true, "min": true, "avg": true, "count": true,
	"rate": true, "irate": true, "increase": true, "changes": true,
	"clamp_min": true, "clamp_max": true, "histogram_quantile": true,
	"time": true, "offset": true, "and": true, "or": true, "unless": true,
	"bool": true, "abs": true,
}

// exprMetrics returns the metric names an expression uses.
func exprMetrics(expr string) []string {
	s := reQuoted.ReplaceAllString(expr, `""`)
	s = reRange.ReplaceAllString(s, "")
	s = reGrouping.ReplaceAllString(s, "")
	s = reMatchers.ReplaceAllString(s, "")
	s = reNumber.ReplaceAllString(s, "")
	var out []string
	for _, id := range reIdent.FindAllString(s, -1) {
		if !promqlWords[id] {
			out = append(out, id)
		}
	}
	return out
}

// knownMetric: name is a family of fams, or a histogram's series.
func knownMetric(fams map[string]*dto.MetricFamily, name string) bool {
	if fams[name] != nil || name == "up" { // up: Prometheus's own
		return true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok {
			if mf := fams[base]; mf != nil && mf.GetType() == dto.MetricType_HISTOGRAM {
				return true
			}
		}
	}
	return false
}

func contribFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "contrib", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestContribExprMetrics(t *testing.T) {
	// The extractor itself, on the forms contrib/ uses.
	got := strings.Join(exprMetrics(`sum by (instance) (rate(derp_tcp_rtt{job="derpd", le=~"500ms|inf"}[15m])) / clamp_min(x_y{a!="b"} offset 10m, 0.001) > 0.5 and up == 0`), " ")
	if want := "derp_tcp_rtt x_y up"; got != want {
		t.Fatalf("exprMetrics = %q, want %q", got, want)
	}
}

func TestContribAlertRules(t *testing.T) {
	var rf ruleFile
	if err := yaml.UnmarshalStrict(contribFile(t, "prometheus/derpd-alerts.yml"), &rf); err != nil {
		t.Fatalf("derpd-alerts.yml: %v", err)
	}
	d := startDerpd(t, derpdOpts{TLS: true})
	_, fams := scrape(t, d.httpClient(), d.BaseURL())
	n := 0
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: no name or no rules", g.Name)
		}
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || !model.IsValidLegacyMetricName(r.Alert) || seen[r.Alert] {
				t.Errorf("rule %q: bad or repeated alert name", r.Alert)
			}
			seen[r.Alert] = true
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", r.Alert, err)
				}
			}
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", r.Alert)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
				t.Errorf("%s: unbalanced expression %q", r.Alert, r.Expr)
			}
			ms := exprMetrics(r.Expr)
			if len(ms) == 0 {
				t.Errorf("%s: no metric in %q", r.Alert, r.Expr)
			}
			for _, m := range ms {
				if !knownMetric(fams, m) {
					t.Errorf("%s: %s is not exported by derpd", r.Alert, m)
				}
			}
		}
	}
	if n < 5 {
		t.Errorf("%d rules", n)
	}
}

func TestContribGrafanaDashboard(t *testing.T) {
	var db grafanaDashboard
	dec := json.NewDecoder(strings.NewReader(string(contribFile(t, "grafana/derpd.json"))))
	if err := dec.Decode(&db); err != nil {
		t.Fatalf("derpd.json: %v", err)
	}
	if db.Title == "" || db.UID == "" {
		t.Errorf("title %q uid %q", db.Title, db.UID)
	}
	vars := map[string]bool{}
	for _, v := range db.Templating.List {
		vars[v.Name] = true
	}
	for _, v := range []string{"datasource", "job", "instance"} {
		if !vars[v] {
			t.Errorf("no $%s variable", v)
		}
	}
	d := startDerpd(t, derpdOpts{TLS: true})
	_, fams := scrape(t, d.httpClient(), d.BaseURL())
	ids := map[int]bool{}
	exprs := 0
	for _, p := range db.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: no title, data source or target", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			exprs++
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") || strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, "}") {
				t.Errorf("panel %q: unbalanced expression %q", p.Title, tg.Expr)
			}
			ms := exprMetrics(tg.Expr)
			if len(ms) == 0 {
				t.Errorf("panel %q: no metric in %q", p.Title, tg.Expr)
			}
			for _, m := range ms {
				if !knownMetric(fams, m) {
					t.Errorf("panel %q: %s is not exported by derpd", p.Title, m)
				}
			}
		}
	}
	if exprs < 10 {
		t.Errorf("%d expressions", exprs)
	}
}
