package queuetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/queue"
)

// runControl checks Cancel, the Requeue of a cancelled job and the pause
// mark.
func runControl(t *testing.T, f Factory) {
	ctx := context.Background()
	t.Run("PauseMark", func(t *testing.T) {
		// The mark is per queue, Pause and Resume are idempotent, and an
		// enqueue lands in a paused queue.
		e := setup(t, f)
		other := Name(t)
		paused := func(q string) bool {
			t.Helper()
			p, err := e.c.Paused(ctx, q)
			if err != nil {
				t.Fatalf("Paused(%s): %v", q, err)
			}
			return p
		}
		if paused(e.q) {
			t.Fatal("a new queue is paused")
		}
		for range 2 {
			if err := e.c.Pause(ctx, e.q); err != nil {
				t.Fatal(err)
			}
		}
		if !paused(e.q) || paused(other) {
			t.Fatalf("after Pause: paused %v, another queue %v; want true, false", paused(e.q), paused(other))
		}
		e.enqueue("lands", queue.EnqueueOptions{})
		if c, _ := e.c.Counts(ctx, e.q); c.Pending != 1 {
			t.Fatalf("counts %+v after an enqueue into a paused queue, want 1 pending", c)
		}
		for range 2 {
			if err := e.c.Resume(ctx, e.q); err != nil {
				t.Fatal(err)
			}
		}
		if paused(e.q) {
			t.Fatal("paused after Resume")
		}
		if err := e.c.Pause(ctx, "bad name"); !errors.Is(err, queue.ErrInvalid) {
			t.Fatalf("Pause of a bad queue name: %v, want ErrInvalid", err)
		}
	})
	t.Run("CancelPending", func(t *testing.T) {
		// Pending, scheduled and retry-waiting jobs never run once
		// cancelled; they count as cancelled, free their while-active
		// unique key and are kept for the dead retention.
		e := setup(t, f)
		pending := e.enqueue("pending", queue.EnqueueOptions{UniqueKey: "w", UniqueWhileActive: true})
		scheduled := e.enqueue("scheduled", queue.EnqueueOptions{Delay: time.Minute})
		retry := e.enqueue("retry", queue.EnqueueOptions{Priority: queue.High})
		if err := e.b.Fail(ctx, e.fetch(1, time.Minute)[0], "x", e.clk.Now().Add(time.Minute), false); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{pending, scheduled, retry} {
			if err := e.c.Cancel(ctx, e.q, id); err != nil {
				t.Fatalf("Cancel(%s): %v", id, err)
			}
			if m := e.state(id); m.State != queue.Cancelled || m.FinishedAt.IsZero() {
				t.Fatalf("a cancelled job: %+v, want cancelled with its finish time", m)
			}
			if err := e.c.Cancel(ctx, e.q, id); err != nil {
				t.Fatalf("Cancel(%s) again: %v, want nil (nothing to do)", id, err)
			}
		}
		e.clk.Add(2 * time.Minute)
		if ls := e.fetch(10, time.Minute); len(ls) != 0 {
			t.Fatalf("cancelled jobs fetched: %v", kinds(ls))
		}
		if c, err := e.c.Counts(ctx, e.q); err != nil || c != (queue.Counts{Cancelled: 3}) {
			t.Fatalf("counts %+v %v, want 3 cancelled and nothing else", c, err)
		}
		again, err := e.c.Enqueue(ctx, e.q, "again", nil, queue.EnqueueOptions{UniqueKey: "w", UniqueWhileActive: true})
		if err != nil {
			t.Fatalf("the while-active unique key of a cancelled job: %v, want it free", err)
		}
		if err := e.c.Delete(ctx, e.q, again); err != nil {
			t.Fatal(err)
		}
		e.deadRetention(pending, queue.Cancelled, func(c queue.Counts) int64 { return c.Cancelled })
	})
	t.Run("CancelActiveLosesItsLease", func(t *testing.T) {
		// A leased job cancelled: every fenced call of its worker gets
		// ErrLeaseLost, and it is not redelivered when the lease runs out.
		e := setup(t, f)
		id := e.enqueue("running", queue.EnqueueOptions{})
		l := e.fetch(1, time.Minute)[0]
		if err := e.c.Cancel(ctx, e.q, id); err != nil {
			t.Fatal(err)
		}
		if err := e.b.Extend(ctx, l, time.Minute); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("Extend of a cancelled job: %v, want ErrLeaseLost", err)
		}
		if err := e.b.Complete(ctx, l, nil); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("Complete of a cancelled job: %v, want ErrLeaseLost", err)
		}
		if err := e.b.Fail(ctx, l, "x", e.clk.Now(), false); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("Fail of a cancelled job: %v, want ErrLeaseLost", err)
		}
		e.clk.Add(2 * time.Minute)
		if ls := e.fetch(10, time.Minute); len(ls) != 0 {
			t.Fatalf("a cancelled job redelivered: %v", kinds(ls))
		}
		if m := e.state(id); m.State != queue.Cancelled || m.Attempt != 1 {
			t.Fatalf("cancelled running job: %+v, want cancelled after 1 attempt", m)
		}
	})
	t.Run("CancelFinished", func(t *testing.T) {
		e := setup(t, f)
		done := e.enqueue("done", queue.EnqueueOptions{})
		if err := e.b.Complete(ctx, e.fetch(1, time.Minute)[0], nil); err != nil {
			t.Fatal(err)
		}
		dead := e.enqueue("dead", queue.EnqueueOptions{})
		if err := e.b.Fail(ctx, e.fetch(1, time.Minute)[0], "x", e.clk.Now(), true); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]queue.State{done: queue.Done, dead: queue.Dead} {
			if err := e.c.Cancel(ctx, e.q, id); !errors.Is(err, queue.ErrFinished) {
				t.Fatalf("Cancel of a %s job: %v, want ErrFinished", want, err)
			}
			if m := e.state(id); m.State != want {
				t.Fatalf("a %s job after Cancel: %s", want, m.State)
			}
		}
		if err := e.c.Cancel(ctx, e.q, "never"); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("Cancel of an unknown id: %v, want ErrNotFound", err)
		}
	})
	t.Run("RequeueCancelled", func(t *testing.T) {
		e := setup(t, f)
		id := e.enqueue("again", queue.EnqueueOptions{})
		if err := e.b.Fail(ctx, e.fetch(1, time.Minute)[0], "x", e.clk.Now().Add(time.Minute), false); err != nil {
			t.Fatal(err)
		}
		if err := e.c.Requeue(ctx, e.q, id); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("Requeue of a retry-waiting job: %v, want ErrNotFound", err)
		}
		if err := e.c.Cancel(ctx, e.q, id); err != nil {
			t.Fatal(err)
		}
		if err := e.c.Requeue(ctx, e.q, id); err != nil {
			t.Fatalf("Requeue of a cancelled job: %v", err)
		}
		if m := e.state(id); m.State != queue.Pending || m.Attempt != 0 {
			t.Fatalf("requeued cancelled job: %+v, want pending with no attempt", m)
		}
		ls := e.fetch(10, time.Minute)
		if len(ls) != 1 || ls[0].Msg.ID != id || ls[0].Msg.Attempt != 1 {
			t.Fatalf("fetched %v after Requeue, want the job at attempt 1", kinds(ls))
		}
		if c, _ := e.c.Counts(ctx, e.q); c.Cancelled != 0 || c.Active != 1 {
			t.Fatalf("counts %+v, want 1 active, none cancelled", c)
		}
	})
}

// runControlWorker cancels a job its Worker runs and pauses its queue.
func runControlWorker(t *testing.T, f RealTimeFactory) {
	ctx := context.Background()
	t.Run("PauseResume", func(t *testing.T) {
		// A running worker stops fetching from a queue paused elsewhere
		// within a second; the enqueue lands; Resume lets it run.
		b, q := f(t), Name(t)
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
		w := worker(t, b, q, queue.Options{})
		ran := make(chan int, 10)
		queue.Handle(w, "job", func(ctx context.Context, j *queue.Job[args]) error {
			ran <- j.Args.N
			return nil
		})
		w.Start(ctx)
		defer w.Close()
		if _, err := c.Enqueue(ctx, q, "job", args{1}, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		if n := <-ran; n != 1 {
			t.Fatalf("ran job %d, want 1", n)
		}
		if err := c.Pause(ctx, q); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // the worker's pause check, at most a second old
		if _, err := c.Enqueue(ctx, q, "job", args{2}, queue.EnqueueOptions{}); err != nil {
			t.Fatalf("Enqueue into a paused queue: %v", err)
		}
		if cnt, _ := c.Counts(ctx, q); cnt.Pending != 1 {
			t.Fatalf("counts %+v in a paused queue, want the job pending", cnt)
		}
		select {
		case n := <-ran:
			t.Fatalf("job %d ran in a paused queue", n)
		case <-time.After(1500 * time.Millisecond):
		}
		if st := w.Stats()[0]; !st.Paused || st.Fetched != 1 {
			t.Fatalf("stats %+v while paused, want Paused and 1 fetched", st)
		}
		at := time.Now()
		if err := c.Resume(ctx, q); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-ran:
			if n != 2 {
				t.Fatalf("ran job %d, want 2", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the job did not run after Resume")
		}
		if took := time.Since(at); took > 2*time.Second {
			t.Errorf("the job ran %v after Resume, want within about a second", took)
		}
		if st := w.Stats()[0]; st.Paused {
			t.Fatalf("stats %+v after Resume, want not paused", st)
		}
	})
	t.Run("CancelRunning", func(t *testing.T) {
		// The handler's ctx is cancelled within a lease (renewed every
		// Lease/3) and the job stays cancelled: not retried, not dead.
		const lease = 900 * time.Millisecond
		b, q := f(t), Name(t)
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
		id, err := c.Enqueue(ctx, q, "long", args{}, queue.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w := worker(t, b, q, queue.Options{Lease: lease})
		started, stopped := make(chan struct{}, 10), make(chan error, 10)
		queue.Handle(w, "long", func(ctx context.Context, j *queue.Job[args]) error {
			started <- struct{}{}
			select {
			case <-ctx.Done():
				stopped <- ctx.Err()
			case <-time.After(time.Minute):
				stopped <- nil
			}
			return ctx.Err()
		})
		w.Start(ctx)
		defer w.Close()
		<-started
		at := time.Now()
		if err := c.Cancel(ctx, q, id); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-stopped:
			if took := time.Since(at); err == nil || took > lease {
				t.Fatalf("the handler's ctx: %v after %v, want cancelled within the %v lease", err, took, lease)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the handler's ctx was not cancelled")
		}
		waitFor(t, "the worker let go of the job", func() bool { return w.Stats()[0].InFlight == 0 })
		time.Sleep(lease / 3)
		if m, err := c.Job(ctx, q, id); err != nil || m.State != queue.Cancelled || m.Attempt != 1 {
			t.Fatalf("the cancelled job: %+v %v, want cancelled after 1 attempt", m, err)
		}
		if len(started) != 0 {
			t.Fatal("a cancelled job ran again")
		}
		if cnt, _ := c.Counts(ctx, q); cnt != (queue.Counts{Cancelled: 1}) {
			t.Fatalf("counts %+v, want 1 cancelled and nothing else", cnt)
		}
		// Stopped by a Cancel, not lost to an expired lease.
		if st := w.Stats()[0]; st.Lost != 0 || st.Cancelled != 1 {
			t.Fatalf("worker stats %+v, want the job counted as cancelled, no lease lost", st)
		}
	})
	t.Run("DeleteRunning", func(t *testing.T) {
		// A running job deleted: the handler returns before the next
		// renewal, its completion is refused, and the worker counts the
		// job as cancelled, not as a lost lease.
		b, q := f(t), Name(t)
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
		id, err := c.Enqueue(ctx, q, "long", args{}, queue.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w := worker(t, b, q, queue.Options{Lease: time.Minute})
		started, finish := make(chan struct{}), make(chan struct{})
		queue.Handle(w, "long", func(ctx context.Context, j *queue.Job[args]) error {
			close(started)
			<-finish
			return nil
		})
		w.Start(ctx)
		defer w.Close()
		<-started
		if err := c.Delete(ctx, q, id); err != nil {
			t.Fatal(err)
		}
		close(finish)
		waitFor(t, "the worker counts the deleted job", func() bool { st := w.Stats()[0]; return st.Cancelled+st.Lost+st.Processed > 0 })
		if st := w.Stats()[0]; st.Cancelled != 1 || st.Lost != 0 || st.Processed != 0 {
			t.Fatalf("worker stats %+v, want the deleted job counted as cancelled", st)
		}
	})
}
