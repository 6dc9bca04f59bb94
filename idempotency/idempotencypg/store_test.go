package idempotencypg

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/idempotency/idempotencytest"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

func newStore(t testing.TB, f *testinfra.PostgresFixture, o Options) *Store {
	t.Helper()
	o.Pool = f.Primary
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	f := testinfra.Postgres(t)
	idempotencytest.Run(t, func(t *testing.T, clk clock.Clock) idempotency.Store {
		return newStore(t, f, Options{Clock: clk})
	})
}

func TestConcurrentDuplicates(t *testing.T) {
	f := testinfra.Postgres(t)
	idempotencytest.ConcurrentDuplicates(t, newStore(t, f, Options{}))
}

// The database's own clock (no Clock set): leases and TTLs run on
// now(), and Sweep removes what expired.
func TestDatabaseTimeAndSweep(t *testing.T) {
	f := testinfra.Postgres(t)
	s := newStore(t, f, Options{})
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate twice: %v", err)
	}
	ctx := context.Background()
	out, err := s.Begin(ctx, "k", "fp", time.Minute, time.Hour)
	if err != nil || out.Status != idempotency.Started {
		t.Fatal(out, err)
	}
	again, err := s.Begin(ctx, "k", "fp", time.Minute, time.Hour)
	if err != nil || again.Status != idempotency.Running || again.RetryAfter <= 58*time.Second || again.RetryAfter > time.Minute {
		t.Fatalf("second Begin: %+v %v, want Running with just under 1m left", again, err)
	}
	short, err := s.Begin(ctx, "short", "fp", time.Millisecond, 5*time.Millisecond)
	if err != nil || short.Status != idempotency.Started {
		t.Fatal(short, err)
	}
	time.Sleep(20 * time.Millisecond)
	n, err := s.Sweep(ctx, 0)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want the 1 expired record", n, err)
	}
}

// A handler that writes a payment in InTx: the effect and the stored
// response commit together. A crash after the commit replays; a crash
// inside the transaction rolls the effect back and the retry runs again.
// Either way the payment exists exactly once.
func TestExactlyOnceEffects(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	if _, err := f.Primary.Exec(ctx, `CREATE TABLE payments (id serial PRIMARY KEY, amount int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, f, Options{})
	m, err := idempotency.NewHTTP(idempotency.HTTPOptions{Store: s, Unscoped: true})
	if err != nil {
		t.Fatal(err)
	}
	var crash atomic.Value // "", "inside", "after"
	crash.Store("")
	var runs atomic.Int64
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		resp, err := s.InTx(r.Context(), func(ctx context.Context, tx pgx.Tx) (idempotency.Response, error) {
			var id int
			if err := tx.QueryRow(ctx, `INSERT INTO payments (amount) VALUES (100) RETURNING id`).Scan(&id); err != nil {
				return idempotency.Response{}, err
			}
			if crash.Load() == "inside" {
				panic("crash after the write, before the commit")
			}
			return idempotency.Response{Status: 201, Header: http.Header{"Content-Type": {"application/json"}}, Body: fmt.Appendf(nil, `{"id":%d}`, id)}, nil
		})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if crash.Load() == "after" {
			panic("crash after the commit, before responding")
		}
		resp.WriteTo(w)
	}))
	send := func(key string) (w *httptest.ResponseRecorder) {
		defer func() {
			if recover() != nil {
				w = nil // the crash: no response
			}
		}()
		req := httptest.NewRequest("POST", "/payments", strings.NewReader(`{"amount":100}`))
		req.Header.Set("Idempotency-Key", key)
		w = httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	count := func() (n int) {
		if err := f.Primary.QueryRow(ctx, `SELECT count(*) FROM payments`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	crash.Store("after")
	if w := send("pay-1"); w != nil {
		t.Fatal("the handler did not crash")
	}
	crash.Store("")
	w := send("pay-1")
	if w == nil || w.Code != 201 || w.Header().Get("Idempotent-Replayed") != "true" || count() != 1 || runs.Load() != 1 {
		t.Fatalf("retry after a crash past the commit: %v, %d payments, %d runs; want the stored response replayed, 1 payment", w, count(), runs.Load())
	}

	crash.Store("inside")
	if w := send("pay-2"); w != nil {
		t.Fatal("the handler did not crash")
	}
	if count() != 1 {
		t.Fatalf("%d payments after a crash inside the transaction, want it rolled back (1)", count())
	}
	crash.Store("")
	w = send("pay-2")
	if w == nil || w.Code != 201 || w.Header().Get("Idempotent-Replayed") != "" || count() != 2 {
		t.Fatalf("retry after a crash inside the transaction: %v, %d payments; want it run again, 2 payments", w, count())
	}
	if w := send("pay-2"); w.Code != 201 || w.Header().Get("Idempotent-Replayed") != "true" || count() != 2 {
		t.Fatalf("third try: %d %q, %d payments", w.Code, w.Header().Get("Idempotent-Replayed"), count())
	}
	if _, err := s.InTx(ctx, nil); !errors.Is(err, idempotency.ErrInvalid) {
		t.Fatalf("InTx outside the middleware: %v, want ErrInvalid", err)
	}
}

// GuardTx gives a queue consumer the same: the job's effect and its
// completion commit together.
func TestGuardTxExactlyOnce(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	if _, err := f.Primary.Exec(ctx, `CREATE TABLE emails (id serial PRIMARY KEY, job text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, f, Options{})
	send := func(fail bool) ([]byte, error) {
		return s.GuardTx(ctx, "job-7", time.Minute, time.Hour, func(ctx context.Context, tx pgx.Tx) ([]byte, error) {
			if _, err := tx.Exec(ctx, `INSERT INTO emails (job) VALUES ('job-7')`); err != nil {
				return nil, err
			}
			if fail {
				return nil, errors.New("smtp timeout")
			}
			return []byte("sent"), nil
		})
	}
	if _, err := send(true); err == nil {
		t.Fatal("the failing attempt returned no error")
	}
	for i := 0; i < 3; i++ { // the redeliveries
		if res, err := send(false); err != nil || string(res) != "sent" {
			t.Fatalf("delivery %d: %q %v", i, res, err)
		}
	}
	var n int
	if err := f.Primary.QueryRow(ctx, `SELECT count(*) FROM emails`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d emails, %v; want exactly 1", n, err)
	}
}

// GuardTx renews its lease while fn runs: a job that takes several leases
// keeps its key (a duplicate delivery gets Running, not the key), and
// commits its effect and completion at the end. On the database's clock.
func TestGuardTxRenewsItsLease(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	s := newStore(t, f, Options{})
	const lease = 1500 * time.Millisecond
	started, finish := make(chan struct{}), make(chan struct{})
	type result struct {
		res []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := s.GuardTx(ctx, "slow-job", lease, time.Hour, func(ctx context.Context, tx pgx.Tx) ([]byte, error) {
			close(started)
			select {
			case <-finish:
				return []byte("done"), nil
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		})
		done <- result{res, err}
	}()
	<-started
	<-time.After(3 * lease) // the job runs for three leases
	dup, err := s.Begin(ctx, "slow-job", "", lease, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	close(finish)
	if dup.Status != idempotency.Running {
		t.Fatalf("a duplicate three leases into the job: %v; want Running (the lease renewed)", dup.Status)
	}
	if r := <-done; r.err != nil || string(r.res) != "done" {
		t.Fatalf("GuardTx of a job longer than its lease: %q, %v", r.res, r.err)
	}
}

// A GuardTx whose lease is lost (its record expired and another caller
// took the key over) has fn's ctx cancelled with cause ErrLeaseLost, its
// transaction rolled back, and returns an error matching ErrLeaseLost; a
// panicking fn releases the key.
func TestGuardTxLostLeaseAndPanic(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	if _, err := f.Primary.Exec(ctx, `CREATE TABLE effects (job text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	clk := testclock.New()
	s := newStore(t, f, Options{Clock: clk})
	const lease = 300 * time.Millisecond
	started := make(chan struct{})
	cause := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		_, err := s.GuardTx(ctx, "lost", lease, time.Hour, func(ctx context.Context, tx pgx.Tx) ([]byte, error) {
			if _, err := tx.Exec(ctx, `INSERT INTO effects VALUES ('lost')`); err != nil {
				return nil, err
			}
			close(started)
			select {
			case <-ctx.Done():
				cause <- context.Cause(ctx)
				return nil, context.Cause(ctx)
			case <-time.After(20 * time.Second):
				cause <- nil
				return []byte("not cancelled"), nil
			}
		})
		done <- err
	}()
	<-started
	clk.Add(time.Hour + lease)
	if out, err := s.Begin(ctx, "lost", "another", lease, time.Hour); err != nil || out.Status != idempotency.Started {
		t.Fatalf("take-over: %+v %v", out, err)
	}
	if c := <-cause; !errors.Is(c, idempotency.ErrLeaseLost) {
		t.Fatalf("fn's ctx after its lease was taken over: cause %v; want it cancelled with ErrLeaseLost", c)
	}
	if err := <-done; !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("GuardTx whose lease was taken over: %v, want ErrLeaseLost", err)
	}
	var n int
	if err := f.Primary.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d effects, %v; want the lost run rolled back", n, err)
	}

	func() {
		defer func() { recover() }()
		s.GuardTx(ctx, "panics", lease, time.Hour, func(context.Context, pgx.Tx) ([]byte, error) { panic("boom") })
	}()
	if res, err := s.GuardTx(ctx, "panics", lease, time.Hour, func(context.Context, pgx.Tx) ([]byte, error) { return []byte("ran"), nil }); err != nil || string(res) != "ran" {
		t.Fatalf("GuardTx after a recovered panic: %q %v; want the key released and fn run", res, err)
	}
	if _, err := s.GuardTx(ctx, "bad", 0, time.Hour, nil); !errors.Is(err, idempotency.ErrInvalid) {
		t.Fatalf("GuardTx with lease 0: %v, want ErrInvalid", err)
	}
}

// A renewal that meets the key's row locked by the completing
// transaction (InTx: the handler's own, committing its effect and the
// stored response) must not wait for the lock and then report the lease
// lost because the commit completed the key: the middleware would cancel
// a handler that has just succeeded. It fails fast, and the heartbeat
// tries again at the next beat.
func TestExtendDoesNotWaitOnTheCompletingTx(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	s := newStore(t, f, Options{})
	out, err := s.Begin(ctx, "k", "fp", time.Minute, time.Hour)
	if err != nil || out.Status != idempotency.Started {
		t.Fatal(out, err)
	}
	tx, err := f.Primary.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := s.CompleteTx(ctx, tx, "k", out.Token, []byte("r"), time.Hour); err != nil {
		t.Fatal(err)
	}
	extended := make(chan error, 1)
	go func() { extended <- s.Extend(ctx, "k", out.Token, time.Minute) }()
	// Commit once the renewal has answered or is waiting on the row lock.
	var err2 error
	answered := false
	poll.Until(t, 10*time.Second, "the renewal answers or waits on the lock", func() bool {
		select {
		case err2 = <-extended:
			answered = true
			return true
		default:
		}
		var waiting int
		if err := f.Primary.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		return waiting > 0
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !answered {
		err2 = <-extended
	}
	if err2 == nil || errors.Is(err2, idempotency.ErrLeaseLost) {
		t.Fatalf("Extend against the row the completing transaction holds: %v; want a transient error, not ErrLeaseLost", err2)
	}
}

// PostgreSQL paused (connections hang): the middleware answers 503 within
// the Timeout and never runs the handler; after resume it works.
func TestPausedDatabaseFailsClosed(t *testing.T) {
	f := testinfra.PostgresExclusive(t)
	s := newStore(t, f, Options{})
	s.timeout = 300 * time.Millisecond
	var runs atomic.Int64
	m, err := idempotency.NewHTTP(idempotency.HTTPOptions{Store: s, Unscoped: true})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { runs.Add(1); w.WriteHeader(201) }))
	send := func() int {
		req := httptest.NewRequest("POST", "/pay", strings.NewReader("x"))
		req.Header.Set("Idempotency-Key", "k")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	if err := f.Cluster.Primary.Pause(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code := send()
	took := time.Since(start)
	if err := f.Cluster.Primary.Resume(); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusServiceUnavailable || runs.Load() != 0 {
		t.Fatalf("database paused: %d with %d runs, want 503 and no run", code, runs.Load())
	}
	if took > 5*time.Second {
		t.Fatalf("the request hung %v (Timeout 300ms)", took)
	}
	poll.Until(t, 10*time.Second, "recovery after the resume", func() bool { return send() == 201 })
}

func TestBadOptions(t *testing.T) {
	f := testinfra.Postgres(t)
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{}, "Options.Pool is required"},
		{Options{Pool: f.Primary, Table: "x; DROP TABLE y"}, "Options.Table"},
		{Options{Pool: f.Primary, Timeout: -1}, "Options.Timeout must be > 0"},
		{Options{Pool: f.Primary, SweepInterval: -1}, "Options.SweepInterval"},
	} {
		if _, err := New(c.o); !errors.Is(err, idempotency.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v; want ErrInvalid saying %q", c.o, err, c.want)
		}
	}
}

func TestBackgroundSweep(t *testing.T) {
	f := testinfra.Postgres(t)
	s := newStore(t, f, Options{SweepInterval: 10 * time.Millisecond})
	ctx := context.Background()
	if _, err := s.Begin(ctx, "gone", "fp", time.Millisecond, 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "the background sweep deleting the expired record", func() bool {
		var n int
		if err := f.Primary.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}
