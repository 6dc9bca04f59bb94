package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/added"
	"github.com/scalekit-go/scalekit/queue"
)

// DeadShown is how many dead jobs the queues page lists per queue,
// newest first.
const DeadShown = 20

// argsShown is how many bytes of a job's JSON args the queues page shows.
const argsShown = 200

// queueRef is a queue client added with AddQueue: its actions are allowed
// on queues only.
type queueRef struct {
	name   string
	cl     *queue.Client
	queues []string
}

// queueView is one queue's section of the queues page.
type queueView struct {
	Client, Queue string
	// Anchor is the section's id: "queue-<client>-<queue>".
	Anchor    string
	Item      item
	Paused    bool
	PausedErr string
	Dead      []deadJob
	DeadErr   string
}

// deadJob is one row of a queue's dead letters.
type deadJob struct {
	ID, Kind, Args, LastError string
	Attempts                  string
	Died                      fact
}

// queueAnchor is the id of a queue's section on the queues page.
func queueAnchor(client, q string) string { return "queue-" + client + "-" + q }

// readQueue reads one queue's counts, pause mark and newest dead jobs,
// all at once, bounded by added.CountsTimeout.
func (v *view) readQueue(ref queueRef, q string) queueView {
	qv := queueView{Client: ref.name, Queue: q, Anchor: queueAnchor(ref.name, q)}
	ctx, cancel := context.WithTimeout(context.Background(), added.CountsTimeout)
	defer cancel()
	n := added.QueueCount{Queue: q}
	var dead []*queue.Message
	var pausedErr, deadErr error
	var wg sync.WaitGroup
	wg.Go(func() { n.Counts, n.Err = ref.cl.Counts(ctx, q) })
	wg.Go(func() { qv.Paused, pausedErr = ref.cl.Paused(ctx, q) })
	wg.Go(func() { dead, deadErr = ref.cl.Dead(ctx, q, DeadShown) })
	wg.Wait()
	qv.Item = v.queueItem(ref.name, n)
	qv.Item.Charts = qv.Item.charts()
	if qv.Paused {
		qv.Item.Facts = append([]fact{{Label: "paused", Value: "yes: workers fetch nothing"}}, qv.Item.Facts...)
		qv.Item.Level = max(qv.Item.Level, amber)
		qv.Item.Reason = "paused; " + qv.Item.Reason
	}
	if pausedErr != nil {
		qv.PausedErr = "reading the pause mark failed: " + redact(pausedErr.Error())
	}
	if deadErr != nil {
		qv.DeadErr = "listing the dead jobs failed: " + redact(deadErr.Error())
	}
	for _, m := range dead {
		d := deadJob{ID: m.ID, Kind: m.Kind, Args: clip(string(m.Payload), argsShown), LastError: redact(m.LastError),
			Attempts: fmt.Sprintf("%d of %d", m.Attempt, m.MaxAttempts)}
		if !m.FinishedAt.IsZero() {
			d.Died = v.at("died", m.FinishedAt)
		}
		qv.Dead = append(qv.Dead, d)
	}
	return qv
}

// clip cuts s to at most n bytes, on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// readQueues reads every queue of every client added with AddQueue,
// concurrently, in the order added.
func (c *Console) readQueues(now time.Time) []queueView {
	c.mu.RLock()
	refs := slices.Clone(c.queueRefs)
	c.mu.RUnlock()
	v := c.newView(now)
	var out [][]queueView
	var wg sync.WaitGroup
	for _, ref := range refs {
		qs := make([]queueView, len(ref.queues))
		out = append(out, qs)
		for i, q := range ref.queues {
			wg.Go(func() { qs[i] = v.readQueue(ref, q) })
		}
	}
	wg.Wait()
	return slices.Concat(out...)
}

func (c *Console) queuePage(w http.ResponseWriter, r *http.Request) {
	now := clock.Now(c.o.Clock)
	qs := c.readQueues(now)
	items := make([]item, len(qs))
	for i, q := range qs {
		items[i] = q.Item
	}
	p := c.newPage(items, now)
	p.Queues = qs
	p.Message = r.URL.Query().Get("done")
	c.render(w, "queues.tmpl", p)
}

// queueActionNames are the actions of POST queues/action; jobActionNames
// those on one job. A dead job's row offers requeue and delete (a dead
// job cannot be cancelled); the job-id form of a queue all three.
var (
	queueActionNames = []string{"requeue", "cancel", "delete", "pause", "resume"}
	jobActionNames   = []string{"requeue", "cancel", "delete"}
)

// queueActions run an action on a job (id) or a queue (id ignored).
var queueActions = map[string]func(cl *queue.Client, ctx context.Context, q, id string) error{
	"requeue": (*queue.Client).Requeue,
	"cancel":  (*queue.Client).Cancel,
	"delete":  (*queue.Client).Delete,
	"pause":   func(cl *queue.Client, ctx context.Context, q, _ string) error { return cl.Pause(ctx, q) },
	"resume":  func(cl *queue.Client, ctx context.Context, q, _ string) error { return cl.Resume(ctx, q) },
}

// queueActionTimeout bounds the backend call of one action.
const queueActionTimeout = 5 * time.Second

func (c *Console) queueAction(w http.ResponseWriter, r *http.Request) {
	client, q, action, id := r.PostFormValue("client"), r.PostFormValue("queue"), r.PostFormValue("action"), r.PostFormValue("id")
	do, ok := queueActions[action]
	if !ok {
		http.Error(w, "400 bad request: action must be one of "+strings.Join(queueActionNames, ", "), http.StatusBadRequest)
		return
	}
	c.mu.RLock()
	ref, ok := c.queueClients[client]
	c.mu.RUnlock()
	switch {
	case !ok:
		http.Error(w, fmt.Sprintf("404 no queue client was added with AddQueue under the name %q", client), http.StatusNotFound)
		return
	case !slices.Contains(ref.queues, q):
		http.Error(w, fmt.Sprintf("404 queue %q was not added with AddQueue for the client %q (added: %s)", q, client, strings.Join(ref.queues, ", ")), http.StatusNotFound)
		return
	case id == "" && action != "pause" && action != "resume":
		http.Error(w, "400 bad request: the field id (the job id) is required for "+action, http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queueActionTimeout)
	defer cancel()
	log := c.o.Logger.With("client", client, "queue", q, "action", action, "remote", r.RemoteAddr)
	if id != "" && action != "pause" && action != "resume" {
		log = log.With("job", id)
	}
	if err := do(ref.cl, ctx, q, id); err != nil {
		msg := redact(err.Error())
		code := http.StatusBadGateway
		switch {
		case errors.Is(err, queue.ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, queue.ErrFinished):
			code = http.StatusConflict
		case errors.Is(err, queue.ErrInvalid):
			code = http.StatusBadRequest
		}
		log.Warn("console: queue action failed", "err", msg)
		http.Error(w, fmt.Sprintf("%d %s: %s", code, action, msg), code)
		return
	}
	log.Info("console: queue action")
	seeOther(w, "../queues?done="+action)
}

// seeOther redirects (303, post/redirect/get: a reload repeats nothing)
// to a location relative to the request's URL as the browser sent it.
// http.Redirect would make it absolute from the path seen after
// http.StripPrefix, dropping the prefix the console is mounted under.
func seeOther(w http.ResponseWriter, rel string) {
	w.Header().Set("Location", rel)
	w.WriteHeader(http.StatusSeeOther)
}
