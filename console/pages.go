package console

import (
	"bytes"
	"html/template"
	"net/http"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/clock"
)

// page is what a template renders.
type page struct {
	Title    string
	Refresh  int // seconds; 0 off
	Now      time.Time
	Worst    level
	Counts   [3]int // items per level
	Items    []item
	ReadOnly bool
	Message  string
	Queues   []queueView // the queues page
	// Heading and None head a detail page and say it has no item.
	Heading, None string
}

var funcs = template.FuncMap{
	"abs":         func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"actionNames": func() []string { return actionNames },
	"jobActions":  func() []string { return jobActionNames },
}

func (c *Console) newPage(items []item, now time.Time) *page {
	p := &page{Title: c.o.Title, Now: now, Items: items, ReadOnly: c.o.ReadOnly}
	if c.o.Refresh > 0 {
		p.Refresh = max(1, int(c.o.Refresh.Round(time.Second)/time.Second))
	}
	for _, it := range items {
		p.Counts[it.Level]++
		p.Worst = max(p.Worst, it.Level)
	}
	return p
}

func (c *Console) render(w http.ResponseWriter, name string, p *page) {
	var buf bytes.Buffer
	if err := c.pages.ExecuteTemplate(&buf, name, p); err != nil {
		c.o.Logger.Error("console: rendering failed", "page", name, "err", err)
		http.Error(w, "500 rendering failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	now := clock.Now(c.o.Clock)
	items := c.read(now)
	c.render(w, "overview.tmpl", c.newPage(items, now))
}

func (c *Console) breakerPage(w http.ResponseWriter, r *http.Request) {
	now := clock.Now(c.o.Clock)
	p := c.newPage(c.readKind(now, "breaker"), now)
	p.Message = r.URL.Query().Get("done")
	c.render(w, "breakers.tmpl", p)
}

// actionNames are the keys of actions, in the order of the buttons.
var actionNames = []string{"force-open", "force-closed", "metrics-only", "reset"}

// actions are the POST actions of the breakers page.
var actions = map[string]func(*breaker.Breaker){
	"force-open":   (*breaker.Breaker).ForceOpen,
	"force-closed": (*breaker.Breaker).ForceClosed,
	"metrics-only": (*breaker.Breaker).MetricsOnly,
	"reset":        (*breaker.Breaker).Reset,
}

func (c *Console) breakerAction(w http.ResponseWriter, r *http.Request) {
	name, action := r.PostFormValue("name"), r.PostFormValue("action")
	do, ok := actions[action]
	if !ok {
		http.Error(w, "400 bad request: action must be force-open, force-closed, metrics-only or reset", http.StatusBadRequest)
		return
	}
	c.mu.RLock()
	ref, ok := c.breakers[name]
	c.mu.RUnlock()
	if !ok {
		http.Error(w, "404 no breaker added with AddBreaker has this name", http.StatusNotFound)
		return
	}
	do(ref.b)
	c.o.Logger.Info("console: breaker action", "breaker", name, "action", action, "state", ref.b.State().String(), "remote", r.RemoteAddr)
	seeOther(w, "breakers?done="+action)
}

// kindPage is a detail page listing the primitives of one kind with their
// numbers and charts.
type kindPage struct {
	path, kind, heading, none string
}

var kindPages = []kindPage{
	{"limiters", "limiter", "Limiters", "No limiter added (AddLimiter)."},
	{"caches", "cache", "Caches", "No cache added (AddCache)."},
	{"dbrouters", "dbrouter", "Database routers", "No router added (AddDBRouter)."},
	{"slos", "SLO", "SLOs", "No SLO added (AddSLO, AddSLOTracker)."},
}

func (c *Console) kindPage(w http.ResponseWriter, k kindPage) {
	now := clock.Now(c.o.Clock)
	var its []item
	for _, it := range c.readKind(now, k.kind) {
		if it.charts != nil {
			it.Charts = it.charts()
		}
		its = append(its, it)
	}
	p := c.newPage(its, now)
	p.Heading, p.None = k.heading, k.none
	c.render(w, "detail.tmpl", p)
}
