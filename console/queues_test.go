package console_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/console"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queueredis"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

var sameOrigin = map[string]string{"Sec-Fetch-Site": "same-origin"}

// syncBuffer is a log sink safe for the handler's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// redisQueue is a queue client on its own redis-server, a worker on the
// queue "mail" whose "send" handler fails permanently (with an error
// holding markup and a password) while fail is set, and a console with
// the client added as "jobs". ran receives each job the handler
// completed.
type redisQueue struct {
	r    *testinfra.RedisFixture
	cl   *queue.Client
	w    *queue.Worker
	con  *console.Console
	fail atomic.Bool
	ran  chan string
	log  *syncBuffer
}

func newRedisQueue(t *testing.T, o console.Options) *redisQueue {
	t.Helper()
	rq := &redisQueue{r: testinfra.Redis(t), ran: make(chan string, 16), log: &syncBuffer{}}
	b, err := queueredis.New(queueredis.Options{Client: rq.r.Client, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rq.cl, err = queue.NewClient(queue.ClientOptions{Backend: b}); err != nil {
		t.Fatal(err)
	}
	rq.w, err = queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: map[string]queue.Options{"mail": {Concurrency: 1}},
		FetchWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	queue.Handle(rq.w, "send", func(ctx context.Context, j *queue.Job[map[string]string]) error {
		if rq.fail.Load() {
			return queue.Permanent(errors.New("smtp: " + xss + " via smtp://mailer:hunter2@mx:25"))
		}
		rq.ran <- j.ID
		return nil
	})
	if err := rq.w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rq.w.Close() })
	o.Logger = slog.New(slog.NewTextHandler(rq.log, nil))
	rq.con = newConsole(t, o)
	if err := rq.con.AddQueue("jobs", rq.cl, "mail", "billing"); err != nil {
		t.Fatal(err)
	}
	return rq
}

func (rq *redisQueue) post(t *testing.T, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	return do(t, rq.con, "POST", "/queues/action", form, hdr)
}

func action(a, q, id string) url.Values {
	return url.Values{"client": {"jobs"}, "queue": {q}, "action": {a}, "id": {id}}
}

// deadJob enqueues a job that dies at its first attempt and waits until
// it is dead.
func (rq *redisQueue) deadJob(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	rq.fail.Store(true)
	id, err := rq.cl.Enqueue(ctx, "mail", "send", map[string]string{"to": xss}, queue.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the job dies", func() bool {
		m, err := rq.cl.Job(ctx, "mail", id)
		return err == nil && m.State == queue.Dead
	})
	return id
}

// A dead job shows with its kind, attempts and last error (markup as
// text, the password masked); requeued from a POST it runs again and
// completes.
func TestQueueDeadRequeue(t *testing.T) {
	rq := newRedisQueue(t, console.Options{})
	ctx := context.Background()
	id := rq.deadJob(t)
	// Go's JSON escapes < and >; a producer in another language may not.
	if err := rq.r.Client.HSet(ctx, "{queue:mail}:job:"+id, "payload", `{"to":"`+xss+`"}`).Err(); err != nil {
		t.Fatal(err)
	}

	w := do(t, rq.con, "GET", "/queues", nil, nil)
	body := w.Body.String()
	if w.Code != 200 {
		t.Fatalf("GET /queues: %d %s", w.Code, body)
	}
	for _, want := range []string{
		`<section id="queue-jobs-mail"`, `<section id="queue-jobs-billing"`,
		`data-action="requeue" data-job="` + id + `"`, `data-action="delete" data-job="` + id + `"`,
		`data-queue="mail"`, `value="pause" data-action="pause"`, `>Pause</button>`,
		`<td>send</td><td>1 of 10</td>`,
		`smtp: &lt;script&gt;alert(1)&lt;/script&gt; via smtp://mailer:[redacted]@mx:25`, // the error
		`<code>{&#34;to&#34;:&#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;}</code>`,    // the args
		`class="state amber">amber</span> jobs / mail`, "1 dead jobs",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the queues page lacks %q:\n%s", want, body)
		}
	}
	if injected(body) || strings.Contains(body, "hunter2") {
		t.Errorf("markup or a password rendered:\n%s", body)
	}
	if ov := do(t, rq.con, "GET", "/", nil, nil).Body.String(); !strings.Contains(ov, `<a href="queues#queue-jobs-mail">jobs / mail</a>`) {
		t.Errorf("the overview does not link the queue to its section:\n%s", ov)
	}

	rq.fail.Store(false)
	w = rq.post(t, action("requeue", "mail", id), sameOrigin)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "../queues?done=requeue" {
		t.Fatalf("requeue: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	select {
	case got := <-rq.ran:
		if got != id {
			t.Fatalf("ran %s, want the requeued %s", got, id)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the requeued job did not run")
	}
	poll.Until(t, 10*time.Second, "the requeued job is done", func() bool {
		m, err := rq.cl.Job(ctx, "mail", id)
		return err == nil && m.State == queue.Done
	})
	if !strings.Contains(rq.log.String(), "console: queue action") || !strings.Contains(rq.log.String(), "job="+id) {
		t.Errorf("the action was not logged with the job:\n%s", rq.log)
	}
	body = do(t, rq.con, "GET", "/queues?done=requeue", nil, nil).Body.String()
	if !strings.Contains(body, "Done: requeue.") || strings.Contains(body, `data-job="`+id+`"`) {
		t.Errorf("after the requeue the page still lists the job or lacks the message:\n%s", body)
	}

	// Delete a dead job; cancel one (it is finished: 409).
	id2 := rq.deadJob(t)
	if w := rq.post(t, action("cancel", "mail", id2), sameOrigin); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "finished") {
		t.Errorf("cancel of a dead job: %d %s, want 409", w.Code, w.Body)
	}
	if w := rq.post(t, action("delete", "mail", id2), sameOrigin); w.Code != http.StatusSeeOther {
		t.Errorf("delete: %d %s", w.Code, w.Body)
	}
	if _, err := rq.cl.Job(ctx, "mail", id2); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("the deleted job: %v, want ErrNotFound", err)
	}
	if w := rq.post(t, action("requeue", "mail", id2), sameOrigin); w.Code != http.StatusNotFound {
		t.Errorf("requeue of a deleted job: %d %s, want 404", w.Code, w.Body)
	}
}

// Pausing from a POST stops the worker fetching; resuming lets it run the
// job enqueued meanwhile.
func TestQueuePauseResume(t *testing.T) {
	rq := newRedisQueue(t, console.Options{})
	ctx := context.Background()
	if w := rq.post(t, action("pause", "mail", ""), sameOrigin); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "../queues?done=pause" {
		t.Fatalf("pause: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	if p, err := rq.cl.Paused(ctx, "mail"); !p || err != nil {
		t.Fatalf("Paused after the POST: %v %v", p, err)
	}
	body := do(t, rq.con, "GET", "/queues", nil, nil).Body.String()
	if !strings.Contains(body, `value="resume" data-action="resume" data-queue="mail">Resume</button>`) || !strings.Contains(body, `jobs / mail <span class="paused">paused</span>`) {
		t.Errorf("a paused queue shows no Resume button or mark:\n%s", body)
	}
	if !strings.Contains(body, `value="pause" data-action="pause" data-queue="billing">Pause</button>`) {
		t.Errorf("the other queue shows no Pause button:\n%s", body)
	}
	poll.Until(t, 10*time.Second, "the worker sees the pause", func() bool { return rq.w.Stats()[0].Paused })
	id, err := rq.cl.Enqueue(ctx, "mail", "send", nil, queue.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-rq.ran:
		t.Fatalf("job %s ran in a paused queue", got)
	case <-time.After(1500 * time.Millisecond): // longer than the worker's pause check (1s)
	}
	if n, _ := rq.cl.Counts(ctx, "mail"); n.Pending != 1 {
		t.Fatalf("counts %+v while paused, want the job pending", n)
	}
	if w := rq.post(t, action("resume", "mail", "ignored"), sameOrigin); w.Code != http.StatusSeeOther {
		t.Fatalf("resume: %d %s", w.Code, w.Body)
	}
	select {
	case got := <-rq.ran:
		if got != id {
			t.Fatalf("ran %s, want %s", got, id)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the job did not run after the resume")
	}
}

// Bad requests name what is wrong; cross-origin POSTs and read-only
// consoles are refused and change nothing.
func TestQueueActionRefusals(t *testing.T) {
	rq := newRedisQueue(t, console.Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		form url.Values
		code int
		want string
	}{
		{action("explode", "mail", "x"), 400, "requeue, cancel, delete, pause, resume"},
		{action("requeue", "mail", ""), 400, "the field id (the job id) is required for requeue"},
		{url.Values{"client": {"nope"}, "queue": {"mail"}, "action": {"pause"}}, 404, `under the name "nope"`},
		{action("pause", "other", ""), 404, `queue "other" was not added with AddQueue for the client "jobs" (added: mail, billing)`},
		{action("requeue", "mail", "no-such-job"), 404, "not found"},
	} {
		w := rq.post(t, tc.form, sameOrigin)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("POST %v: %d %q, want %d with %q", tc.form, w.Code, w.Body, tc.code, tc.want)
		}
	}
	for _, hdr := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}} {
		if w := rq.post(t, action("pause", "mail", ""), hdr); w.Code != http.StatusForbidden {
			t.Errorf("cross-origin POST with %v: %d, want 403", hdr, w.Code)
		}
	}
	if p, _ := rq.cl.Paused(ctx, "mail"); p {
		t.Fatal("a refused POST paused the queue")
	}

	ro := newRedisQueue(t, console.Options{ReadOnly: true})
	id := ro.deadJob(t)
	body := do(t, ro.con, "GET", "/queues", nil, nil).Body.String()
	if strings.Contains(body, "<form") || strings.Contains(body, "<button") || !strings.Contains(body, "<code>"+id+"</code>") {
		t.Errorf("the read-only page shows actions, or not the dead job:\n%s", body)
	}
	for _, a := range []string{"pause", "requeue"} {
		if w := ro.post(t, action(a, "mail", id), sameOrigin); w.Code != http.StatusForbidden {
			t.Errorf("read-only %s: %d, want 403", a, w.Code)
		}
	}
	if m, _ := ro.cl.Job(ctx, "mail", id); m == nil || m.State != queue.Dead {
		t.Errorf("a read-only POST changed the job: %+v", m)
	}
}

// With Redis stopped, the page still renders (red, the errors shown) and
// an action answers 502 with the error, logged.
func TestQueueBackendDown(t *testing.T) {
	rq := newRedisQueue(t, console.Options{})
	must(t, rq.con.Start(context.Background())) // one sample, Redis up
	defer rq.con.Close()
	rq.r.Stop()
	start := time.Now()
	w := do(t, rq.con, "GET", "/queues", nil, nil)
	body := w.Body.String()
	if took := time.Since(start); w.Code != 200 || took > 5*time.Second {
		t.Fatalf("GET /queues with Redis down: %d after %v", w.Code, took)
	}
	for _, want := range []string{`class="state red">red</span> jobs / mail`, "counting failed: ", "reading the pause mark failed: ", "listing the dead jobs failed: "} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q:\n%s", want, body)
		}
	}
	w = rq.post(t, action("pause", "mail", ""), sameOrigin)
	if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "502 pause: ") {
		t.Errorf("pause with Redis down: %d %s, want 502 with the error", w.Code, w.Body)
	}
	if !strings.Contains(rq.log.String(), "console: queue action failed") {
		t.Errorf("the failure was not logged:\n%s", rq.log)
	}
	// A sample with Redis down records no queue numbers, in bounded time:
	// each queue's lag chart keeps the one point sampled by Start.
	start = time.Now()
	console.SampleNow(rq.con)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a sample with Redis down took %v", took)
	}
	if ls := lines(do(t, rq.con, "GET", "/queues", nil, nil).Body.String()); ls["lag"] != 2 {
		t.Errorf("lag points of the 2 queues: %v, want the one sample each taken while Redis was up", ls)
	}
}

// With Redis paused (a hung server), the page and an action answer
// within the backend's timeouts: the page red, the action 502.
func TestQueueBackendPaused(t *testing.T) {
	rq := newRedisQueue(t, console.Options{})
	rq.r.Pause()
	defer rq.r.Resume()
	start := time.Now()
	body := do(t, rq.con, "GET", "/queues", nil, nil).Body.String()
	if took := time.Since(start); took > 5*time.Second || !strings.Contains(body, `class="state red">red</span> jobs / mail`) {
		t.Errorf("GET /queues with Redis paused, after %v:\n%s", took, body)
	}
	start = time.Now()
	w := rq.post(t, action("resume", "mail", ""), sameOrigin)
	if took := time.Since(start); w.Code != http.StatusBadGateway || took > 10*time.Second {
		t.Errorf("resume with Redis paused: %d after %v: %s", w.Code, took, w.Body)
	}
}

// Mounted under a prefix, actions redirect back under it (http.Redirect
// would drop the prefix http.StripPrefix removed: the breakers page did).
func TestActionsRedirectUnderPrefix(t *testing.T) {
	con := newConsole(t, console.Options{})
	b := newBreaker(t, "payments")
	must(t, con.AddBreaker(b))
	cl, err := queue.NewClient(queue.ClientOptions{Backend: queue.NewMemoryBackend(queue.MemoryBackendOptions{})})
	must(t, err)
	must(t, con.AddQueue("jobs", cl, "mail"))
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", con))
	for _, tc := range []struct {
		path string
		form url.Values
		want string
	}{
		{"/admin/breakers", url.Values{"name": {"payments"}, "action": {"force-open"}}, "/admin/breakers?done=force-open"},
		{"/admin/queues/action", action("pause", "mail", ""), "/admin/queues?done=pause"},
	} {
		w := do(t, mux, "POST", tc.path, tc.form, sameOrigin)
		base, _ := url.Parse("http://example.com" + tc.path)
		loc, err := url.Parse(w.Header().Get("Location"))
		if w.Code != http.StatusSeeOther || err != nil || base.ResolveReference(loc).RequestURI() != tc.want {
			t.Errorf("POST %s: %d, Location %q, want it to resolve to %s", tc.path, w.Code, w.Header().Get("Location"), tc.want)
		}
	}
	if b.State() != breaker.ForcedOpen {
		t.Errorf("breaker %v", b.State())
	}
}
