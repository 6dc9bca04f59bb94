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
	items := c.read(now)
	var bs []item
	for _, it := range items {
		if it.Kind == "breaker" {
			bs = append(bs, it)
		}
	}
	p := c.newPage(bs, now)
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
