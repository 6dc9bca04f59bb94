package dbrouter

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// newReal is New over the fixture's pools with test-friendly timing: a
// 50ms monitor, and checks that may take testinfra.CallTimeout.
func newReal(t testing.TB, f *testinfra.PostgresFixture, o Options) *Router {
	t.Helper()
	o.Primary = f.Primary
	o.Replicas = append(o.Replicas, f.Replica)
	if o.Interval == 0 {
		o.Interval = 50 * time.Millisecond
	}
	if o.CheckTimeout == 0 {
		o.CheckTimeout = testinfra.CallTimeout
	}
	r, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// served runs SELECT pg_is_in_recovery() through q: "replica" or "primary".
func served(t testing.TB, ctx context.Context, q Querier) string {
	t.Helper()
	var rec bool
	if err := q.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil {
		t.Fatalf("pg_is_in_recovery: %v", err)
	}
	if rec {
		return "replica"
	}
	return "primary"
}

func mustExec(t testing.TB, q Querier, sql string, args ...any) {
	t.Helper()
	if _, err := q.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Reads land on the replica; writes, transactions, batches and
// Primary(ctx) reads on the primary; a read-only BeginTx on the replica.
// Code written against Querier takes the router, a pool or a transaction.
func TestRouting(t *testing.T) {
	f := testinfra.Postgres(t)
	r := newReal(t, f, Options{})
	ctx := context.Background()
	mustExec(t, r, "CREATE TABLE items (id int PRIMARY KEY, v text)")
	mustExec(t, r, "INSERT INTO items VALUES (1, 'a'), (2, 'b')")
	f.WaitReplicaCaughtUp()

	if got := served(t, ctx, r); got != "replica" {
		t.Fatalf("QueryRow served by %s", got)
	}
	rows, err := r.Query(ctx, "SELECT v, pg_is_in_recovery() FROM items ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	type item struct {
		V   string
		Rec bool
	}
	items, err := pgx.CollectRows(rows, pgx.RowToStructByPos[item])
	if err != nil || len(items) != 2 || items[0].V != "a" || !items[0].Rec {
		t.Fatalf("Query: %+v %v", items, err)
	}
	if got := served(t, Primary(ctx), r); got != "primary" {
		t.Fatalf("Primary(ctx) read served by %s", got)
	}

	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := served(t, ctx, tx); got != "primary" {
		t.Fatalf("Begin: transaction on %s", got)
	}
	mustExec(t, tx, "INSERT INTO items VALUES (3, 'c')")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		opts pgx.TxOptions
		want string
	}{
		{pgx.TxOptions{AccessMode: pgx.ReadOnly}, "replica"},
		{pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, "replica"},
		{pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.Serializable}, "primary"}, // a standby refuses it
		{pgx.TxOptions{AccessMode: pgx.ReadWrite}, "primary"},
		{pgx.TxOptions{}, "primary"},
	} {
		tx, err := r.BeginTx(ctx, c.opts)
		if err != nil {
			t.Fatalf("%+v: %v", c.opts, err)
		}
		if got := served(t, ctx, tx); got != c.want {
			t.Fatalf("BeginTx(%+v) on %s, want %s", c.opts, got, c.want)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		tx.Rollback(ctx) // a deferred second Rollback is harmless
	}
	err = pgx.BeginFunc(ctx, r, func(tx pgx.Tx) error {
		if got := served(t, ctx, tx); got != "primary" {
			t.Errorf("BeginFunc on %s", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	var rec bool
	b.Queue("SELECT pg_is_in_recovery()").QueryRow(func(row pgx.Row) error { return row.Scan(&rec) })
	if err := r.SendBatch(ctx, b).Close(); err != nil || rec {
		t.Fatalf("SendBatch: in recovery %v, %v", rec, err)
	}
	// One repository function, four Queriers.
	for name, q := range map[string]Querier{"router": r, "primary pool": f.Primary, "replica pool": f.Replica} {
		want := map[string]string{"router": "replica", "primary pool": "primary", "replica pool": "replica"}[name]
		if got := served(t, ctx, q); got != want {
			t.Fatalf("%s: %s", name, got)
		}
	}
	st := r.Stats()
	if st.Replicas[0].Reads < 4 || st.Replicas[0].InFlight != 0 || !st.Replicas[0].Healthy || st.Primary.Writes < 5 || !st.Primary.Up {
		t.Fatalf("stats %+v", st)
	}
}

// A statement routed as a read that writes gets SQLSTATE 25006 from the
// replica: it runs once more on the primary, and the routing bug is logged
// and counted. An ordinary SQL error is returned, not retried.
func TestReadOnlyErrorRetriedOnPrimary(t *testing.T) {
	f := testinfra.Postgres(t)
	log, buf := newLog()
	r := newReal(t, f, Options{Logger: log})
	ctx := context.Background()
	mustExec(t, r, "CREATE TABLE seq_t (id serial PRIMARY KEY, n int)")
	f.WaitReplicaCaughtUp()

	var id int
	if err := r.QueryRow(ctx, "INSERT INTO seq_t (n) VALUES (1) RETURNING id").Scan(&id); err != nil || id != 1 {
		t.Fatalf("QueryRow INSERT: %d %v", id, err)
	}
	rows, err := r.Query(ctx, "INSERT INTO seq_t (n) VALUES (2), (3) RETURNING id")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil || len(ids) != 2 || ids[0] != 2 {
		t.Fatalf("Query INSERT: %v %v", ids, err)
	}
	st := r.Stats()
	if st.ReadOnlyRetries != 2 || st.Replicas[0].InFlight != 0 || !st.Replicas[0].Healthy || buf.Count("routing bug") != 2 {
		t.Fatalf("stats %+v\nlog:\n%s", st, buf)
	}
	primaryReads := st.Primary.Reads
	err = r.QueryRow(ctx, "SELECT no_such_column FROM seq_t").Scan(&id)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42703" {
		t.Fatalf("SQL error: %v", err)
	}
	rows, err = r.Query(ctx, "SELECT 1/0")
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	if !errors.As(err, &pe) || pe.Code != "22012" {
		t.Fatalf("Query of 1/0: %v", err)
	}
	if st := r.Stats(); st.Primary.Reads != primaryReads || st.ReplicaRetries != 0 || !st.Replicas[0].Healthy {
		t.Fatalf("a SQL error was retried or counted against the replica: %+v", st)
	}
}

// With replay paused, a read without a token is served stale by the
// replica (which proves the setup), and a read with the write's token is
// served by the primary and sees the row. With TokenWait it waits first.
// After resume, token reads go back to the replica.
func TestLagReadYourWrites(t *testing.T) {
	f := testinfra.Postgres(t)
	r := newReal(t, f, Options{})
	ctx := context.Background()
	mustExec(t, r, "CREATE TABLE items (id int PRIMARY KEY)")
	f.WaitReplicaCaughtUp()
	f.PauseReplay()

	mustExec(t, r, "INSERT INTO items VALUES (1)")
	tok, err := r.WriteToken(ctx)
	if err != nil || tok.LSN == 0 {
		t.Fatalf("WriteToken %v %v", tok, err)
	}
	read := func(ctx context.Context, q Querier) (where string, found bool) {
		t.Helper()
		var rec bool
		err := q.QueryRow(ctx, "SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM items WHERE id = 1)").Scan(&rec, &found)
		if err != nil {
			t.Fatal(err)
		}
		if rec {
			return "replica", found
		}
		return "primary", found
	}
	if where, found := read(ctx, r); where != "replica" || found {
		t.Fatalf("without a token: %s, found %v; want a stale read on the replica", where, found)
	}
	if where, found := read(WithToken(ctx, tok), r); where != "primary" || !found {
		t.Fatalf("with the token: %s, found %v", where, found)
	}
	rw := newReal(t, f, Options{TokenWait: 150 * time.Millisecond, TokenPoll: 10 * time.Millisecond})
	start := time.Now()
	if where, found := read(WithToken(ctx, tok), rw); where != "primary" || !found || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("TokenWait: %s, found %v after %v", where, found, time.Since(start))
	}
	if st := rw.Stats(); st.TokenPrimary != 1 || st.TokenWaits != 0 {
		t.Fatalf("TokenWait stats %+v", st)
	}

	f.ResumeReplay()
	d := poll.Until(t, 10*time.Second, "token reads back on the replica", func() bool {
		where, found := read(WithToken(ctx, tok), r)
		if where == "replica" && !found {
			t.Fatal("stale read with a token")
		}
		return where == "replica"
	})
	t.Logf("token reads back on the replica %v after resume", d)
	if st := r.Stats(); st.TokenPrimary == 0 || st.Fallbacks != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// 1000 write-then-read iterations from 100 goroutines, half with
// WriteToken + WithToken and half with a session (automatic capture):
// every read finds its row, though reading the replica directly right
// after the write mostly does not, and many reads are served by the
// replica (TokenWait lets them wait for it). The token is the insert LSN
// with synchronous_commit off; a flush-LSN token is shown to be unsafe.
func TestReadYourWrites1000(t *testing.T) {
	f := testinfra.Postgres(t)
	r := newReal(t, f, Options{TokenWait: 2 * time.Second, TokenPoll: 2 * time.Millisecond})
	ctx := context.Background()
	var sc string
	if err := f.Primary.QueryRow(ctx, "SHOW synchronous_commit").Scan(&sc); err != nil || sc != "off" {
		t.Fatalf("synchronous_commit = %q %v; this test is meant for off", sc, err)
	}
	mustExec(t, r, "CREATE TABLE rw (id int PRIMARY KEY, g int)")
	f.WaitReplicaCaughtUp()

	const n, workers = 1000, 100
	var stale, onReplica, directStale atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				wctx := ctx
				session := i%2 == 1
				if session {
					wctx = WithSession(ctx, Token{})
				}
				if _, err := r.Exec(wctx, "INSERT INTO rw VALUES ($1, $2)", i, w); err != nil {
					t.Error(err)
					return
				}
				var there bool
				if err := f.Replica.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM rw WHERE id = $1)", i).Scan(&there); err != nil {
					t.Error(err)
					return
				}
				if !there {
					directStale.Add(1)
				}
				rctx := wctx
				if !session {
					tok, err := r.WriteToken(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					rctx = WithToken(ctx, tok)
				}
				var rec bool
				var g int
				err := r.QueryRow(rctx, "SELECT pg_is_in_recovery(), g FROM rw WHERE id = $1", i).Scan(&rec, &g)
				switch {
				case errors.Is(err, pgx.ErrNoRows):
					stale.Add(1)
				case err != nil:
					t.Error(err)
					return
				case rec:
					onReplica.Add(1)
				}
			}
		})
	}
	wg.Wait()
	st := r.Stats()
	t.Logf("%d iterations in %v: %d stale with tokens, %d served by the replica (%d after waiting), %d to the primary by token; reading the replica directly right after the write: %d stale",
		n, time.Since(start).Round(time.Millisecond), stale.Load(), onReplica.Load(), st.TokenWaits, st.TokenPrimary, directStale.Load())
	if stale.Load() != 0 {
		t.Fatalf("%d stale reads with tokens", stale.Load())
	}
	if directStale.Load() == 0 {
		t.Fatal("the replica was never behind: the test proves nothing")
	}
	if onReplica.Load() < n/4 {
		t.Fatalf("only %d of %d token reads served by the replica", onReplica.Load(), n)
	}

	// Why the insert LSN: with synchronous_commit off a commit returns before
	// its WAL is flushed, so a flush-LSN token can be below the commit.
	flushStale := 0
	for i := n; i < n+100; i++ {
		mustExec(t, f.Primary, "INSERT INTO rw VALUES ($1, 0)", i)
		var flush string
		if err := f.Primary.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&flush); err != nil {
			t.Fatal(err)
		}
		var there bool
		err := f.Replica.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AND EXISTS (SELECT 1 FROM rw WHERE id = $2)`, flush, i).Scan(&there)
		if err != nil {
			t.Fatal(err)
		}
		var reached bool
		f.Replica.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", flush).Scan(&reached)
		if reached && !there {
			flushStale++
		}
	}
	t.Logf("a flush-LSN token would have allowed %d stale reads in 100 (the replica had replayed the token but not the row)", flushStale)
}

// The HTTP middleware carries a session's token from a write request to
// the user's next read request, against the real replica.
func TestMiddlewareReadYourWrites(t *testing.T) {
	f := testinfra.Postgres(t)
	r := newReal(t, f, Options{})
	mustExec(t, r, "CREATE TABLE notes (id int PRIMARY KEY)")
	f.WaitReplicaCaughtUp()
	hl, err := NewHTTP(HTTPOptions{Router: r})
	if err != nil {
		t.Fatal(err)
	}
	h := notesHandler(t, r, hl.Middleware)
	f.PauseReplay()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/notes", nil))
	cookies := rec.Result().Cookies()
	if rec.Code != 200 || len(cookies) != 1 || rec.Header().Get("X-DB-Token") == "" {
		t.Fatalf("POST: %d %v", rec.Code, rec.Header())
	}
	get := func(withCookie bool) string {
		req := httptest.NewRequest(http.MethodGet, "/notes", nil)
		if withCookie {
			req.AddCookie(cookies[0])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Body.String()
	}
	if got := get(false); got != "replica missing" {
		t.Fatalf("GET without the cookie: %q (want a stale replica read)", got)
	}
	if got := get(true); got != "primary found" {
		t.Fatalf("GET with the cookie: %q", got)
	}
	f.ResumeReplay()
	poll.Until(t, 10*time.Second, "the cookie's reads back on the replica", func() bool {
		got := get(true)
		if got == "replica missing" {
			t.Fatal("stale read with the cookie")
		}
		return got == "replica found"
	})
}

// With replay paused and writes flowing, the replica is ejected once its
// lag passes MaxLagBytes (reads fall back to the primary), and readmitted
// once replay resumes (and the writes stop: while they flow, WAL shipping
// under synchronous_commit off keeps the lag above ReadmitLagBytes, which is
// the hysteresis doing its job).
func TestLagEjection(t *testing.T) {
	f := testinfra.Postgres(t)
	log, buf := newLog()
	r := newReal(t, f, Options{MaxLagBytes: 256 << 10, EjectAfter: 2, ReadmitAfter: 2, Logger: log})
	ctx := context.Background()
	mustExec(t, r, "CREATE TABLE big (id serial, pad text)")
	f.WaitReplicaCaughtUp()
	if got := served(t, ctx, r); got != "replica" {
		t.Fatalf("before: %s", got)
	}
	f.PauseReplay()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := r.Exec(ctx, "INSERT INTO big (pad) SELECT repeat('x', 1000) FROM generate_series(1, 50)"); err != nil {
				t.Error(err)
				return
			}
		}
	})
	stopWrites := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWrites()
	d := poll.Until(t, 15*time.Second, "ejection for lag", func() bool { return !r.Stats().Replicas[0].Healthy })
	st := r.Stats()
	t.Logf("ejected %v after pausing replay: %s", d, st.Replicas[0].Reason)
	if !strings.Contains(st.Replicas[0].Reason, "MaxLagBytes") || st.Replicas[0].LagBytes <= 256<<10 || buf.Count("replica ejected") != 1 {
		t.Fatalf("stats %+v\nlog:\n%s", st.Replicas[0], buf)
	}
	if got := served(t, ctx, r); got != "primary" || r.Stats().Fallbacks == 0 {
		t.Fatalf("read while ejected: %s, stats %+v", got, r.Stats())
	}
	stopWrites()
	f.ResumeReplay()
	d = poll.Until(t, 15*time.Second, "readmission", func() bool { return r.Stats().Replicas[0].Healthy })
	t.Logf("readmitted %v after resuming replay", d)
	if got := served(t, ctx, r); got != "replica" || r.Stats().Replicas[0].Readmissions != 1 || buf.Count("replica readmitted") != 1 {
		t.Fatalf("after readmission: %s, %+v", got, r.Stats().Replicas[0])
	}
}

// Open makes the pools with Tracers: slow queries are logged with their
// target and counted per target in Stats; the monitor's checks are not
// counted; Close closes the pools.
func TestOpenTracer(t *testing.T) {
	f := testinfra.Postgres(t)
	log, buf := newLog()
	ctx := context.Background()
	r, err := Open(ctx, f.PrimaryURL, []string{f.ReplicaURL}, Options{SlowQuery: 50 * time.Millisecond, Logger: log,
		ReplicaNames: []string{"replica-a"}, Interval: 20 * time.Millisecond, CheckTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var one int
	if err := r.QueryRow(ctx, "SELECT 1 FROM pg_sleep(0.06)").Scan(&one); err != nil {
		t.Fatal(err)
	}
	mustExec(t, r, "SELECT 1")
	time.Sleep(100 * time.Millisecond) // a few monitor checks
	st := r.Stats()
	if rq := st.Replicas[0].Queries; st.Replicas[0].Name != "replica-a" || rq.Target != "replica-a" || rq.Queries != 1 || rq.Slow != 1 {
		t.Fatalf("replica stats %+v", st.Replicas[0])
	}
	if pq := st.Primary.Queries; pq.Target != "primary" || pq.Queries != 1 || pq.Slow != 0 {
		t.Fatalf("primary stats %+v", st.Primary)
	}
	if !strings.Contains(buf.String(), "slow query") || !strings.Contains(buf.String(), "target=replica-a") {
		t.Fatalf("log:\n%s", buf)
	}
	r.Close()
	if err := r.PrimaryPool().Ping(ctx); err == nil {
		t.Fatal("Close left Open's pools open")
	}
}
