// Package queuetest is the conformance suite every queue.Backend of this
// module passes (MemoryBackend, queuepg, queueredis): Run drives a
// backend directly with simulated time; RunWorker runs real Workers on it.
//
// Run checks, among the rest, that an Enqueue retried with the same ID
// and content returns the job already there, that a refused Enqueue takes
// no unique key, EnqueueMany's result per job (duplicates of existing
// jobs and within the batch, a retried job, a used id), the
// unique-while-active holds, Delete, Cancel (of a pending, scheduled,
// retry-waiting or leased job; refused for a finished one), the Requeue
// of a cancelled job, the pause mark, List (full pages by id with a
// cursor that survives jobs added and removed between pages and
// concurrent writers, state and kind filters with the queue's totals, a
// rare kind past queue.ListScanBudget, bad cursors and limits), Queues,
// and the default dead retention
// (queue.DefaultDeadRetention); a backend that removes old jobs only
// when asked implements Sweeper, which Run calls first. Its
// Periodic cases run queue.Schedulers on the backend: three instances
// with skewed clocks and restarts enqueue each of 10 ticks once, and the
// missed-tick and overlap policies hold. RunPeriodicFleet does the same
// across operating-system processes on the real clock: three processes
// with skewed clocks, one leaving and one joining, run each of ten ticks
// exactly once. Its Publish cases check the events: a fan-out to 3
// subscriber queues, each getting the event once with the same id and
// retrying or dead-lettering it on its own; a retried publish delivering
// no duplicate; Unsubscribe; a topic with no subscriber storing nothing;
// concurrent publishers; and, on a backend that implements TxPublisher,
// a rolled-back publish delivering nothing.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/queue"
)

// Factory returns the Backend under test reading the time from clk (its
// Options.Clock). It is called once per subtest; queue names are unique
// per subtest.
type Factory func(t *testing.T, clk clock.Clock) queue.Backend

// Name is a queue name unique to this test run.
func Name(t testing.TB) string {
	return "q" + strconv.FormatUint(rand.Uint64(), 36)
}

var order = [3]queue.Priority{queue.High, queue.Default, queue.Low}

type env struct {
	t   *testing.T
	b   queue.Backend
	c   *queue.Client
	clk *testclock.Clock
	q   string
}

func setup(t *testing.T, f Factory) *env {
	clk := testclock.New()
	b := f(t, clk)
	c, err := queue.NewClient(queue.ClientOptions{Backend: b, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, b: b, c: c, clk: clk, q: Name(t)}
}

func (e *env) enqueue(kind string, o queue.EnqueueOptions) string {
	e.t.Helper()
	id, err := e.c.Enqueue(context.Background(), e.q, kind, map[string]string{"kind": kind}, o)
	if err != nil {
		e.t.Fatalf("Enqueue(%s): %v", kind, err)
	}
	return id
}

func (e *env) fetch(max int, lease time.Duration) []*queue.Lease {
	e.t.Helper()
	ls, err := e.b.Fetch(context.Background(), queue.FetchRequest{Queue: e.q, Max: max, Lease: lease, Order: order})
	if err != nil {
		e.t.Fatalf("Fetch: %v", err)
	}
	return ls
}

func (e *env) state(id string) *queue.Message {
	e.t.Helper()
	m, err := e.c.Job(context.Background(), e.q, id)
	if err != nil {
		e.t.Fatalf("Job(%s): %v", id, err)
	}
	return m
}

func kinds(ls []*queue.Lease) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Msg.Kind)
	}
	return out
}

// Sweeper is a Backend that removes jobs past their retention only when
// asked (queuepg): the suite calls Sweep before it checks a retention.
type Sweeper interface {
	Sweep(ctx context.Context) (int64, error)
}

// sweep runs e's backend's Sweep, if it has one, and a Fetch (which
// applies the retention on backends that clean up as they go).
func (e *env) sweep() {
	e.t.Helper()
	if s, ok := e.b.(Sweeper); ok {
		if _, err := s.Sweep(context.Background()); err != nil {
			e.t.Fatalf("Sweep: %v", err)
		}
	}
	e.fetch(1, time.Minute)
}

// deadRetention checks that job id, in state want, is kept for the dead
// retention and removed past it, its count (counted) back to 0.
func (e *env) deadRetention(id string, want queue.State, counted func(queue.Counts) int64) {
	e.t.Helper()
	e.clk.Add(queue.DefaultDeadRetention - time.Hour)
	e.sweep()
	if m := e.state(id); m.State != want {
		e.t.Fatalf("a %s job within the dead retention: %s, want %s", want, m.State, want)
	}
	e.clk.Add(2 * time.Hour)
	e.sweep()
	if _, err := e.c.Job(context.Background(), e.q, id); !errors.Is(err, queue.ErrNotFound) {
		e.t.Fatalf("a %s job past the %v dead retention: %v, want ErrNotFound", want, queue.DefaultDeadRetention, err)
	}
	if c, _ := e.c.Counts(context.Background(), e.q); counted(c) != 0 {
		e.t.Fatalf("counts %+v past the dead retention, want no %s job", c, want)
	}
}

// Run runs the Backend conformance suite as subtests of t. The Factory's
// backends must use the default dead retention
// (queue.DefaultDeadRetention).
func Run(t *testing.T, f Factory) {
	ctx := context.Background()
	t.Run("FIFOAndComplete", func(t *testing.T) {
		e := setup(t, f)
		ids := []string{e.enqueue("a", queue.EnqueueOptions{}), e.enqueue("b", queue.EnqueueOptions{}), e.enqueue("c", queue.EnqueueOptions{})}
		ls := e.fetch(10, time.Minute)
		if fmt.Sprint(kinds(ls)) != "[a b c]" {
			t.Fatalf("fetched %v, want [a b c] in enqueue order", kinds(ls))
		}
		for _, l := range ls {
			if l.Msg.Attempt != 1 || l.Msg.State != queue.Active || l.Token == "" || string(l.Msg.Payload) != `{"kind":"`+l.Msg.Kind+`"}` {
				t.Fatalf("lease %+v", l.Msg)
			}
		}
		if more := e.fetch(10, time.Minute); len(more) != 0 {
			t.Fatalf("leased jobs fetched again: %v", kinds(more))
		}
		if err := e.b.Complete(ctx, ls[0], nil); err != nil {
			t.Fatal(err)
		}
		if m := e.state(ids[0]); m.State != queue.Done || m.FinishedAt.IsZero() {
			t.Fatalf("completed job: %+v", m)
		}
		c, err := e.c.Counts(ctx, e.q)
		if err != nil || c.Done != 1 || c.Active != 2 || c.Pending != 0 {
			t.Fatalf("counts %+v %v", c, err)
		}
		if _, err := e.c.Job(ctx, e.q, "nope"); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("unknown job: %v", err)
		}
	})
	t.Run("Priorities", func(t *testing.T) {
		e := setup(t, f)
		e.enqueue("low", queue.EnqueueOptions{Priority: queue.Low})
		e.enqueue("default", queue.EnqueueOptions{})
		e.enqueue("high", queue.EnqueueOptions{Priority: queue.High})
		ls := e.fetch(10, time.Minute)
		if fmt.Sprint(kinds(ls)) != "[high default low]" {
			t.Fatalf("fetched %v, want [high default low]", kinds(ls))
		}
		e.enqueue("low2", queue.EnqueueOptions{Priority: queue.Low})
		e.enqueue("high2", queue.EnqueueOptions{Priority: queue.High})
		l, err := e.b.Fetch(ctx, queue.FetchRequest{Queue: e.q, Max: 1, Lease: time.Minute, Order: [3]queue.Priority{queue.Low, queue.High, queue.Default}})
		if err != nil || len(l) != 1 || l[0].Msg.Kind != "low2" {
			t.Fatalf("a fetch ordered Low first got %v %v, want low2: low jobs are not starved", kinds(l), err)
		}
	})
	t.Run("Delay", func(t *testing.T) {
		e := setup(t, f)
		id := e.enqueue("later", queue.EnqueueOptions{Delay: 10 * time.Second})
		if m := e.state(id); m.State != queue.Scheduled {
			t.Fatalf("delayed job state %s, want scheduled", m.State)
		}
		if c, _ := e.c.Counts(ctx, e.q); c.Scheduled != 1 {
			t.Fatalf("counts %+v, want 1 scheduled", c)
		}
		if ls := e.fetch(1, time.Minute); len(ls) != 0 {
			t.Fatal("a job delayed 10s ran at once")
		}
		e.clk.Add(10 * time.Second)
		ls := e.fetch(1, time.Minute)
		if len(ls) != 1 {
			t.Fatal("the delayed job did not run once due")
		}
		if err := e.b.Complete(ctx, ls[0], nil); err != nil {
			t.Fatal(err)
		}
		at := e.enqueue("at", queue.EnqueueOptions{RunAt: e.clk.Now().Add(time.Hour)})
		e.clk.Add(59 * time.Minute)
		if ls := e.fetch(1, time.Minute); len(ls) != 0 {
			t.Fatal("a job for in an hour ran after 59 minutes")
		}
		e.clk.Add(time.Minute)
		if ls := e.fetch(1, time.Minute); len(ls) != 1 || ls[0].Msg.ID != at {
			t.Fatal("the RunAt job did not run at its time")
		}
	})
	t.Run("RetryThenDead", func(t *testing.T) {
		e := setup(t, f)
		id := e.enqueue("flaky", queue.EnqueueOptions{MaxAttempts: 2})
		l := e.fetch(1, time.Minute)[0]
		if err := e.b.Fail(ctx, l, "boom 1", e.clk.Now().Add(5*time.Second), false); err != nil {
			t.Fatal(err)
		}
		if m := e.state(id); m.State != queue.Retry || m.LastError != "boom 1" {
			t.Fatalf("after a failure: %+v", m)
		}
		if c, _ := e.c.Counts(ctx, e.q); c.Retry != 1 {
			t.Fatalf("counts %+v, want 1 retry", c)
		}
		if ls := e.fetch(1, time.Minute); len(ls) != 0 {
			t.Fatal("retried before its backoff")
		}
		e.clk.Add(5 * time.Second)
		l = e.fetch(1, time.Minute)[0]
		if l.Msg.Attempt != 2 || l.Msg.LastError != "boom 1" {
			t.Fatalf("second attempt: %+v", l.Msg)
		}
		if err := e.b.Fail(ctx, l, "boom 2", e.clk.Now(), false); err != nil {
			t.Fatal(err)
		}
		if m := e.state(id); m.State != queue.Dead || m.LastError != "boom 2" {
			t.Fatalf("after MaxAttempts: %+v, want dead with the last error", m)
		}
		dead, err := e.c.Dead(ctx, e.q, 10)
		if err != nil || len(dead) != 1 || dead[0].ID != id {
			t.Fatalf("Dead = %v %v", dead, err)
		}
		if err := e.c.Requeue(ctx, e.q, id); err != nil {
			t.Fatal(err)
		}
		l = e.fetch(1, time.Minute)[0]
		if l.Msg.ID != id || l.Msg.Attempt != 1 {
			t.Fatalf("requeued: %+v, want attempt 1 again", l.Msg)
		}
		if err := e.c.Requeue(ctx, e.q, id); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("Requeue of a job that is not dead: %v", err)
		}
		p := e.enqueue("bad", queue.EnqueueOptions{})
		if err := e.b.Fail(ctx, e.fetch(1, time.Minute)[0], "permanent", e.clk.Now(), true); err != nil {
			t.Fatal(err)
		}
		if m := e.state(p); m.State != queue.Dead || m.Attempt != 1 {
			t.Fatalf("a permanent failure: %+v, want dead after 1 attempt", m)
		}
	})
	t.Run("Unique", func(t *testing.T) {
		e := setup(t, f)
		first := e.enqueue("report", queue.EnqueueOptions{UniqueKey: "daily", UniqueFor: time.Hour})
		id, err := e.c.Enqueue(ctx, e.q, "report", nil, queue.EnqueueOptions{UniqueKey: "daily"})
		var dup *queue.DuplicateError
		if !errors.As(err, &dup) || !errors.Is(err, queue.ErrDuplicate) || id != first || dup.ID != first {
			t.Fatalf("duplicate: %q %v, want the first job's id and a *DuplicateError", id, err)
		}
		e.clk.Add(time.Hour)
		if _, err := e.c.Enqueue(ctx, e.q, "report", nil, queue.EnqueueOptions{UniqueKey: "daily"}); err != nil {
			t.Fatalf("after UniqueFor: %v", err)
		}
		if c, _ := e.c.Counts(ctx, e.q); c.Pending != 2 {
			t.Fatalf("counts %+v, want 2 jobs", c)
		}
	})
	t.Run("EnqueueRetriedWithSameID", func(t *testing.T) {
		// An Enqueue that timed out but landed is retried with the same
		// ID: it succeeds and names the job already there.
		e := setup(t, f)
		o := queue.EnqueueOptions{ID: "order-42"}
		first := e.enqueue("ship", o)
		e.clk.Add(time.Second) // the retry is a new call, a second later
		id, err := e.c.Enqueue(ctx, e.q, "ship", map[string]string{"kind": "ship"}, o)
		if err != nil || id != first {
			t.Fatalf("retried Enqueue with the same ID and content: %q %v, want %q and no error", id, err, first)
		}
		if _, err := e.c.Enqueue(ctx, e.q, "ship", map[string]string{"kind": "other"}, o); !errors.Is(err, queue.ErrInvalid) {
			t.Fatalf("same ID, other args: %v, want ErrInvalid", err)
		}
		if _, err := e.c.Enqueue(ctx, e.q, "other", map[string]string{"kind": "ship"}, o); !errors.Is(err, queue.ErrInvalid) {
			t.Fatalf("same ID, other kind: %v, want ErrInvalid", err)
		}
		uo := queue.EnqueueOptions{ID: "order-43", UniqueKey: "order-43"}
		held := e.enqueue("ship", uo)
		e.clk.Add(time.Second)
		if id, err := e.c.Enqueue(ctx, e.q, "ship", map[string]string{"kind": "ship"}, uo); err != nil || id != held {
			t.Fatalf("retried Enqueue of a job holding its unique key: %q %v, want %q and no error", id, err, held)
		}
		if c, _ := e.c.Counts(ctx, e.q); c.Pending != 2 {
			t.Fatalf("counts %+v, want 2 jobs: a retry adds none", c)
		}
		// The job is leased and done: a late retry still finds it.
		for _, l := range e.fetch(10, time.Minute) {
			if err := e.b.Complete(ctx, l, nil); err != nil {
				t.Fatal(err)
			}
		}
		if id, err := e.c.Enqueue(ctx, e.q, "ship", map[string]string{"kind": "ship"}, o); err != nil || id != first {
			t.Fatalf("retried Enqueue of a done job: %q %v, want %q and no error", id, err, first)
		}
		if m := e.state(first); m.State != queue.Done {
			t.Fatalf("the done job after a retried enqueue: %s, want done (not run again)", m.State)
		}
	})
	t.Run("EnqueueManyWithDuplicates", func(t *testing.T) {
		e := setup(t, f)
		other := e.q + "-b" // a batch may span queues
		args := func(kind string) map[string]string { return map[string]string{"kind": kind} }
		req := func(q, kind string, o queue.EnqueueOptions) queue.EnqueueRequest {
			return queue.EnqueueRequest{Queue: q, Kind: kind, Args: args(kind), Options: o}
		}
		holder := e.enqueue("holder", queue.EnqueueOptions{UniqueKey: "held"})
		retried := e.enqueue("retried", queue.EnqueueOptions{ID: "job-7"})
		e.enqueue("taken", queue.EnqueueOptions{ID: "job-8"})
		e.clk.Add(time.Second)
		res, err := e.c.EnqueueMany(ctx,
			req(e.q, "fresh1", queue.EnqueueOptions{}),
			req(e.q, "dup-held", queue.EnqueueOptions{UniqueKey: "held"}),
			req(e.q, "twin-a", queue.EnqueueOptions{UniqueKey: "twin"}),
			req(other, "other", queue.EnqueueOptions{UniqueKey: "twin"}), // another queue: another key
			req(e.q, "twin-b", queue.EnqueueOptions{UniqueKey: "twin", UniqueWhileActive: true}),
			req(e.q, "retried", queue.EnqueueOptions{ID: "job-7"}), // a retry that landed: SameJob
			req(e.q, "not-job-8", queue.EnqueueOptions{ID: "job-8", UniqueKey: "k8"}),
			req(e.q, "later", queue.EnqueueOptions{Delay: time.Minute, UniqueKey: "later"}),
			req(e.q, "fresh2", queue.EnqueueOptions{Priority: queue.High}),
		)
		if err != nil || len(res) != 9 {
			t.Fatalf("EnqueueMany: %v %v, want 9 results", res, err)
		}
		isDup := func(i int, want string) {
			t.Helper()
			var d *queue.DuplicateError
			if !errors.As(res[i].Err, &d) || !errors.Is(res[i].Err, queue.ErrDuplicate) || d.ID != want || res[i].ID != want {
				t.Fatalf("result %d: %+v, want a *DuplicateError naming %s", i, res[i], want)
			}
		}
		for _, i := range []int{0, 2, 3, 5, 7, 8} {
			if res[i].Err != nil || res[i].ID == "" {
				t.Fatalf("result %d: %+v, want an id and no error", i, res[i])
			}
		}
		isDup(1, holder)
		isDup(4, res[2].ID) // the key went to the batch's first job with it
		if res[5].ID != retried {
			t.Fatalf("the retried job: %+v, want %s", res[5], retried)
		}
		if !errors.Is(res[6].Err, queue.ErrInvalid) {
			t.Fatalf("a used id with other content: %+v, want ErrInvalid", res[6])
		}
		if res[3].ID == res[2].ID || res[0].ID == res[8].ID {
			t.Fatal("two jobs of a batch got one id")
		}
		if m := e.state(res[7].ID); m.State != queue.Scheduled || m.Kind != "later" || string(m.Payload) != `{"kind":"later"}` {
			t.Fatalf("the delayed job: %+v", m)
		}
		if m, err := e.c.Job(ctx, other, res[3].ID); err != nil || m.Kind != "other" {
			t.Fatalf("the other queue's job: %+v %v", m, err)
		}
		// Refused jobs took nothing: k8 is free; the held keys stay held.
		if _, err := e.c.Enqueue(ctx, e.q, "k8", nil, queue.EnqueueOptions{UniqueKey: "k8"}); err != nil {
			t.Fatalf("the key of a refused job: %v, want it free", err)
		}
		if id, err := e.c.Enqueue(ctx, e.q, "again", nil, queue.EnqueueOptions{UniqueKey: "twin"}); !errors.Is(err, queue.ErrDuplicate) || id != res[2].ID {
			t.Fatalf("the twin key after the batch: %q %v, want held by %s", id, err, res[2].ID)
		}
		c, err := e.c.Counts(ctx, e.q)
		if err != nil || c.Pending != 7 || c.Scheduled != 1 {
			t.Fatalf("counts %+v %v, want 7 pending (4 before, 3 of the batch) and 1 scheduled", c, err)
		}
		// The batch keeps its order within a priority.
		ls := e.fetch(10, time.Minute)
		if got := fmt.Sprint(kinds(ls)); got != "[fresh2 holder retried taken fresh1 twin-a k8]" {
			t.Fatalf("fetched %s", got)
		}
		// Bad jobs are reported before anything is sent, naming the index
		// and the field; nothing of the batch is stored.
		for _, c := range []struct {
			bad  queue.EnqueueRequest
			want string
		}{
			{req(e.q, "bad kind", queue.EnqueueOptions{}), "jobs[1]"},
			{queue.EnqueueRequest{Queue: e.q, Kind: "k", Args: func() {}}, "jobs[1]"},
			{req(e.q, "k", queue.EnqueueOptions{Delay: -1}), "Delay"},
			{req(e.q, "k", queue.EnqueueOptions{ID: "twice"}), "jobs[1].Options.ID"},
		} {
			_, err := e.c.EnqueueMany(ctx, req(e.q, "good", queue.EnqueueOptions{ID: "twice"}), c.bad)
			if !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("a batch with %+v: %v, want ErrInvalid naming %s", c.bad, err, c.want)
			}
		}
		if _, err := e.c.Job(ctx, e.q, "twice"); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("the good job of a refused batch: %v, want ErrNotFound", err)
		}
		if res, err := e.c.EnqueueMany(ctx); res != nil || err != nil {
			t.Fatalf("an empty batch: %v %v", res, err)
		}
	})
	t.Run("RejectedEnqueueTakesNoUniqueKey", func(t *testing.T) {
		e := setup(t, f)
		e.enqueue("a", queue.EnqueueOptions{ID: "used"})
		if _, err := e.c.Enqueue(ctx, e.q, "b", nil, queue.EnqueueOptions{ID: "used", UniqueKey: "k"}); !errors.Is(err, queue.ErrInvalid) {
			t.Fatalf("another job with a used id: %v, want ErrInvalid", err)
		}
		if _, err := e.c.Enqueue(ctx, e.q, "c", nil, queue.EnqueueOptions{UniqueKey: "k"}); err != nil {
			t.Fatalf("the unique key after a refused enqueue: %v, want it free", err)
		}
	})
	t.Run("UniqueWhileActive", func(t *testing.T) {
		e := setup(t, f)
		o := queue.EnqueueOptions{UniqueKey: "nightly", UniqueWhileActive: true}
		dup := func(holder, when string) {
			t.Helper()
			id, err := e.c.Enqueue(ctx, e.q, "report", nil, o)
			var d *queue.DuplicateError
			if !errors.As(err, &d) || id != holder || d.ID != holder {
				t.Fatalf("%s: %q %v, want a *DuplicateError naming %s", when, id, err, holder)
			}
		}
		free := func(when string) string {
			t.Helper()
			id, err := e.c.Enqueue(ctx, e.q, "report", nil, o)
			if err != nil {
				t.Fatalf("%s: %v, want the key free", when, err)
			}
			return id
		}
		first := free("first enqueue")
		if m := e.state(first); m.UniqueKey != "nightly" || !m.UniqueWhileActive {
			t.Fatalf("job %+v, want its while-active unique key", m)
		}
		dup(first, "while pending")
		e.clk.Add(48 * time.Hour)
		dup(first, "while pending 48h later (no time bound)")
		l := e.fetch(1, time.Minute)[0]
		dup(first, "while active")
		if err := e.b.Fail(ctx, l, "boom", e.clk.Now().Add(time.Second), false); err != nil {
			t.Fatal(err)
		}
		dup(first, "while waiting for a retry")
		e.clk.Add(time.Second)
		if err := e.b.Complete(ctx, e.fetch(1, time.Minute)[0], nil); err != nil {
			t.Fatal(err)
		}
		second := free("once the job is done")
		dup(second, "while the next one is pending")
		if err := e.b.Fail(ctx, e.fetch(1, time.Minute)[0], "fatal", e.clk.Now(), true); err != nil {
			t.Fatal(err)
		}
		third := free("once the job is dead")
		dup(third, "while the third one is pending")
		// A requeued dead job does not take its key again.
		if err := e.b.Fail(ctx, e.fetch(1, time.Minute)[0], "fatal", e.clk.Now(), true); err != nil {
			t.Fatal(err)
		}
		if err := e.c.Requeue(ctx, e.q, third); err != nil {
			t.Fatal(err)
		}
		free("after the dead holder was requeued")
		for _, bad := range []queue.EnqueueOptions{{UniqueWhileActive: true}, {UniqueKey: "k", UniqueWhileActive: true, UniqueFor: time.Minute}} {
			if _, err := e.c.Enqueue(ctx, e.q, "report", nil, bad); !errors.Is(err, queue.ErrInvalid) {
				t.Errorf("Enqueue(%+v): %v, want ErrInvalid", bad, err)
			}
		}
	})
	t.Run("Delete", func(t *testing.T) {
		e := setup(t, f)
		active := e.enqueue("active", queue.EnqueueOptions{})
		l := e.fetch(1, time.Minute)[0]
		dead := e.enqueue("dead", queue.EnqueueOptions{})
		if err := e.b.Fail(ctx, e.fetch(1, time.Minute)[0], "x", e.clk.Now(), true); err != nil {
			t.Fatal(err)
		}
		done := e.enqueue("done", queue.EnqueueOptions{})
		if err := e.b.Complete(ctx, e.fetch(1, time.Minute)[0], nil); err != nil {
			t.Fatal(err)
		}
		retry := e.enqueue("retry", queue.EnqueueOptions{})
		if err := e.b.Fail(ctx, e.fetch(1, time.Minute)[0], "x", e.clk.Now().Add(time.Minute), false); err != nil {
			t.Fatal(err)
		}
		pending := e.enqueue("pending", queue.EnqueueOptions{UniqueKey: "k", UniqueFor: time.Hour})
		scheduled := e.enqueue("scheduled", queue.EnqueueOptions{Delay: time.Minute, UniqueKey: "w", UniqueWhileActive: true})
		for _, id := range []string{active, dead, done, retry, pending, scheduled} {
			if err := e.c.Delete(ctx, e.q, id); err != nil {
				t.Fatalf("Delete(%s): %v", id, err)
			}
			if _, err := e.c.Job(ctx, e.q, id); !errors.Is(err, queue.ErrNotFound) {
				t.Fatalf("Job(%s) after Delete: %v, want ErrNotFound", id, err)
			}
			if err := e.c.Delete(ctx, e.q, id); !errors.Is(err, queue.ErrNotFound) {
				t.Fatalf("Delete(%s) again: %v, want ErrNotFound", id, err)
			}
		}
		if err := e.b.Complete(ctx, l, nil); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("Complete of a deleted active job: %v, want ErrLeaseLost", err)
		}
		e.clk.Add(2 * time.Minute)
		if ls := e.fetch(10, time.Minute); len(ls) != 0 {
			t.Fatalf("deleted jobs fetched: %v", kinds(ls))
		}
		if c, err := e.c.Counts(ctx, e.q); err != nil || c != (queue.Counts{}) {
			t.Fatalf("counts after deleting every job: %+v %v, want zero", c, err)
		}
		if d, err := e.c.Dead(ctx, e.q, 10); err != nil || len(d) != 0 {
			t.Fatalf("Dead after Delete: %v %v", d, err)
		}
		for _, k := range []string{"k", "w"} {
			if _, err := e.c.Enqueue(ctx, e.q, "again", nil, queue.EnqueueOptions{UniqueKey: k}); err != nil {
				t.Fatalf("unique key %q of a deleted job: %v, want it free", k, err)
			}
		}
		if err := e.c.Delete(ctx, e.q, "never"); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("Delete of an unknown id: %v, want ErrNotFound", err)
		}
	})
	t.Run("DeadRetention", func(t *testing.T) {
		e := setup(t, f)
		id := e.enqueue("doomed", queue.EnqueueOptions{})
		if err := e.b.Fail(ctx, e.fetch(1, time.Minute)[0], "x", e.clk.Now(), true); err != nil {
			t.Fatal(err)
		}
		e.deadRetention(id, queue.Dead, func(c queue.Counts) int64 { return c.Dead })
		if d, err := e.c.Dead(ctx, e.q, 10); err != nil || len(d) != 0 {
			t.Fatalf("Dead past the retention: %v %v, want none", d, err)
		}
	})
	t.Run("LeaseExpiryRedelivers", func(t *testing.T) {
		e := setup(t, f)
		id := e.enqueue("slow", queue.EnqueueOptions{})
		old := e.fetch(1, 30*time.Second)[0]
		e.clk.Add(20 * time.Second)
		if ls := e.fetch(1, 30*time.Second); len(ls) != 0 {
			t.Fatal("redelivered while the lease held")
		}
		e.clk.Add(11 * time.Second)
		cur := e.fetch(1, 30*time.Second)
		if len(cur) != 1 || cur[0].Msg.ID != id || cur[0].Msg.Attempt != 2 || cur[0].Token == old.Token {
			t.Fatalf("after the lease expired: %v, want the job again as attempt 2 with a new token", cur)
		}
		if err := e.b.Complete(ctx, old, nil); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("the old holder's Complete: %v, want ErrLeaseLost", err)
		}
		if err := e.b.Extend(ctx, old, time.Minute); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("the old holder's Extend: %v, want ErrLeaseLost", err)
		}
		if err := e.b.Fail(ctx, old, "x", e.clk.Now(), true); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("the old holder's Fail: %v, want ErrLeaseLost", err)
		}
		e.clk.Add(20 * time.Second)
		if err := e.b.Extend(ctx, cur[0], 30*time.Second); err != nil {
			t.Fatal(err)
		}
		e.clk.Add(20 * time.Second) // 40s after the fetch, 20s after the renewal
		if ls := e.fetch(1, 30*time.Second); len(ls) != 0 {
			t.Fatal("redelivered although the lease was renewed")
		}
		if err := e.b.Complete(ctx, cur[0], nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ReleaseDoesNotCountAnAttempt", func(t *testing.T) {
		e := setup(t, f)
		e.enqueue("x", queue.EnqueueOptions{})
		l := e.fetch(1, time.Minute)[0]
		if err := e.b.Release(ctx, l, time.Time{}); err != nil {
			t.Fatal(err)
		}
		again := e.fetch(1, time.Minute)
		if len(again) != 1 || again[0].Msg.Attempt != 1 {
			t.Fatalf("after Release: %v, want the job at attempt 1", again)
		}
	})
	t.Run("RedeliveredComeFirst", func(t *testing.T) {
		// Jobs given back by Release (due now) and jobs whose lease ran
		// out come before the jobs that waited behind them (natsrelay
		// keeps its order per key on it).
		e := setup(t, f)
		for _, k := range []string{"a", "b", "c", "d"} {
			e.enqueue(k, queue.EnqueueOptions{})
		}
		ls := e.fetch(2, time.Minute)
		for i := len(ls) - 1; i >= 0; i-- { // in reverse: each goes to the front
			if err := e.b.Release(ctx, ls[i], time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
		ls = e.fetch(3, 30*time.Second)
		if got := fmt.Sprint(kinds(ls)); got != "[a b c]" {
			t.Fatalf("after releasing a and b: fetched %s, want [a b c]", got)
		}
		e.enqueue("e", queue.EnqueueOptions{})
		e.clk.Add(31 * time.Second)
		got := kinds(e.fetch(10, time.Minute))
		slices.Sort(got[:min(3, len(got))])
		if fmt.Sprint(got) != "[a b c d e]" {
			t.Fatalf("after the leases of a, b and c ran out: fetched %v (the first three sorted), want a, b and c, then d and e", got)
		}
	})
	t.Run("SnoozeSpendsNoAttempt", func(t *testing.T) {
		e := setup(t, f)
		id := e.enqueue("x", queue.EnqueueOptions{MaxAttempts: 1})
		l := e.fetch(1, time.Minute)[0]
		for i := 1; i <= 3; i++ {
			if err := e.b.Release(ctx, l, e.clk.Now().Add(5*time.Second)); err != nil {
				t.Fatalf("snooze %d: %v", i, err)
			}
			if err := e.b.Release(ctx, l, e.clk.Now().Add(5*time.Second)); !errors.Is(err, queue.ErrLeaseLost) {
				t.Fatalf("snoozing a lease given back: %v, want ErrLeaseLost", err)
			}
			m := e.state(id)
			if m.State != queue.Scheduled || m.Attempt != 0 || m.MaxAttempts != 1 || m.Snoozes != i || !m.RunAt.Equal(e.clk.Now().Add(5*time.Second)) {
				t.Fatalf("after snooze %d: %+v, want scheduled in 5s, attempt 0 of 1, %d snoozes", i, m, i)
			}
			e.clk.Add(4 * time.Second)
			if ls := e.fetch(1, time.Minute); len(ls) != 0 {
				t.Fatalf("snoozed job fetched 1s before its time")
			}
			e.clk.Add(time.Second)
			ls := e.fetch(1, time.Minute)
			if len(ls) != 1 || ls[0].Msg.ID != id || ls[0].Msg.Attempt != 1 || ls[0].Msg.Snoozes != i {
				t.Fatalf("after snooze %d: fetched %v, want the job at attempt 1 with %d snoozes", i, ls, i)
			}
			l = ls[0]
		}
		c, err := e.c.Counts(ctx, e.q)
		if err != nil || c.Active != 1 || c.Scheduled != 0 || c.Retry != 0 {
			t.Fatalf("counts %+v %v, want the job active", c, err)
		}
		// A snooze whose time has come makes the job pending at once,
		// behind the jobs already waiting.
		other := e.enqueue("y", queue.EnqueueOptions{})
		e.clk.Add(time.Second)
		if err := e.b.Release(ctx, l, e.clk.Now()); err != nil {
			t.Fatal(err)
		}
		if m := e.state(id); m.State != queue.Pending || m.Snoozes != 4 || m.Attempt != 0 {
			t.Fatalf("after a snooze due now: %+v, want pending, 4 snoozes, attempt 0", m)
		}
		ls := e.fetch(2, time.Minute)
		if len(ls) != 2 || ls[0].Msg.ID != other || ls[1].Msg.ID != id || ls[1].Msg.Attempt != 1 {
			t.Fatalf("fetched %v, want %s then the snoozed job at attempt 1", ls, other)
		}
		// Its one attempt is still there: completing it works, and a
		// failure now is the last one.
		if err := e.b.Fail(ctx, ls[1], "boom", e.clk.Now(), false); err != nil {
			t.Fatal(err)
		}
		if m := e.state(id); m.State != queue.Dead || m.Attempt != 1 || m.Snoozes != 4 {
			t.Fatalf("after failing its one attempt: %+v, want dead at attempt 1", m)
		}
	})
	t.Run("ResultsAndProgress", func(t *testing.T) {
		e := setup(t, f)
		id := e.enqueue("report", queue.EnqueueOptions{})
		enqueued := e.clk.Now()
		if m := e.state(id); m.Progress != (queue.Progress{}) || m.Output != nil || !m.StartedAt.IsZero() || !m.EnqueuedAt.Equal(enqueued) {
			t.Fatalf("a new job: %+v, want no progress, output or start", m)
		}
		e.clk.Add(time.Second)
		old := e.fetch(1, 30*time.Second)[0]
		if !old.Msg.StartedAt.Equal(e.clk.Now()) {
			t.Fatalf("leased job started at %v, want %v", old.Msg.StartedAt, e.clk.Now())
		}
		e.clk.Add(time.Second)
		if err := e.b.Progress(ctx, old, 40, "rendering page 4 of 10"); err != nil {
			t.Fatal(err)
		}
		want := queue.Progress{Percent: 40, Message: "rendering page 4 of 10", UpdatedAt: e.clk.Now()}
		if m := e.state(id); m.State != queue.Active || !m.Progress.UpdatedAt.Equal(want.UpdatedAt) || m.Progress.Percent != 40 || m.Progress.Message != want.Message || !m.StartedAt.Equal(old.Msg.StartedAt) {
			t.Fatalf("after a progress report: %+v, want active with %+v", m, want)
		}
		// A worker whose lease ran out cannot overwrite the progress, even
		// once another one holds the job.
		e.clk.Add(30 * time.Second)
		if err := e.b.Progress(ctx, old, 50, "late"); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("progress on an expired lease: %v, want ErrLeaseLost", err)
		}
		cur := e.fetch(1, 30*time.Second)
		if len(cur) != 1 || cur[0].Msg.Attempt != 2 || !cur[0].Msg.StartedAt.Equal(e.clk.Now()) {
			t.Fatalf("after the lease expired: %v, want attempt 2 started now", cur)
		}
		started := e.clk.Now()
		if err := e.b.Progress(ctx, old, 60, "late"); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("progress on a lease another worker took: %v, want ErrLeaseLost", err)
		}
		if m := e.state(id); m.Progress.Percent != 40 || m.Progress.Message != want.Message {
			t.Fatalf("a lost lease overwrote the progress: %+v", m.Progress)
		}
		e.clk.Add(time.Second)
		if err := e.b.Progress(ctx, cur[0], 100, ""); err != nil {
			t.Fatal(err)
		}
		output := []byte(`{"pages":10,"url":"https://files.example.com/r/1.pdf"}`)
		if err := e.b.Complete(ctx, old, []byte(`{"stale":true}`)); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("the old holder's Complete: %v, want ErrLeaseLost", err)
		}
		e.clk.Add(time.Second)
		if err := e.b.Complete(ctx, cur[0], output); err != nil {
			t.Fatal(err)
		}
		m := e.state(id)
		if m.State != queue.Done || string(m.Output) != string(output) || m.Attempt != 2 || m.Progress.Percent != 100 || m.Progress.Message != "" ||
			!m.Progress.UpdatedAt.Equal(started.Add(time.Second)) || !m.StartedAt.Equal(started) || !m.FinishedAt.Equal(e.clk.Now()) || !m.EnqueuedAt.Equal(enqueued) {
			t.Fatalf("completed job: %+v, want done at attempt 2 with its output, progress 100 and its times", m)
		}
		// A job completed without an output has none.
		plain := e.enqueue("plain", queue.EnqueueOptions{})
		if err := e.b.Complete(ctx, e.fetch(1, time.Minute)[0], nil); err != nil {
			t.Fatal(err)
		}
		if m := e.state(plain); m.State != queue.Done || m.Output != nil || m.Progress != (queue.Progress{}) {
			t.Fatalf("a job completed with no output: %+v", m)
		}
	})
	t.Run("ConcurrentFetchLeasesEachJobOnce", func(t *testing.T) {
		e := setup(t, f)
		const n = 120
		for i := 0; i < n; i++ {
			e.enqueue("j", queue.EnqueueOptions{})
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					ls, err := e.b.Fetch(ctx, queue.FetchRequest{Queue: e.q, Max: 5, Lease: time.Minute, Order: order})
					if err != nil {
						t.Error(err)
						return
					}
					if len(ls) == 0 {
						return
					}
					mu.Lock()
					for _, l := range ls {
						seen[l.Msg.ID]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("%d distinct jobs leased, want %d", len(seen), n)
		}
		for id, k := range seen {
			if k != 1 {
				t.Fatalf("job %s leased %d times", id, k)
			}
		}
	})
	t.Run("CountsAndLag", func(t *testing.T) {
		e := setup(t, f)
		e.enqueue("a", queue.EnqueueOptions{})
		e.clk.Add(3 * time.Second)
		e.enqueue("b", queue.EnqueueOptions{})
		c, err := e.c.Counts(ctx, e.q)
		if err != nil || c.Pending != 2 || c.OldestPending < 3*time.Second || c.OldestPending > 4*time.Second {
			t.Fatalf("counts %+v %v, want 2 pending, the oldest 3s old", c, err)
		}
	})
	t.Run("BadArguments", func(t *testing.T) {
		e := setup(t, f)
		for _, c := range []struct {
			queue, kind string
			o           queue.EnqueueOptions
		}{{"", "k", queue.EnqueueOptions{}}, {e.q, "bad kind", queue.EnqueueOptions{}}, {e.q, "k", queue.EnqueueOptions{Delay: -1}},
			{e.q, "k", queue.EnqueueOptions{Priority: 9}}, {e.q, "k", queue.EnqueueOptions{MaxAttempts: -1}}} {
			if _, err := e.c.Enqueue(ctx, c.queue, c.kind, nil, c.o); !errors.Is(err, queue.ErrInvalid) {
				t.Errorf("Enqueue(%q, %q, %+v): %v, want ErrInvalid", c.queue, c.kind, c.o, err)
			}
		}
		if _, err := e.c.Enqueue(ctx, e.q, "k", func() {}, queue.EnqueueOptions{}); !errors.Is(err, queue.ErrInvalid) {
			t.Errorf("args that are not JSON: %v", err)
		}
	})
	runControl(t, f)
	runList(t, f)
	runPeriodic(t, f)
	runEvents(t, f)
}
