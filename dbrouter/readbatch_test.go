package dbrouter

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// readBatch reads, in one batch, where it ran and whether item id exists.
func readBatch(ctx context.Context, r *Router, id int) (where string, found bool, err error) {
	var rec bool
	b := &pgx.Batch{}
	b.Queue("SELECT pg_is_in_recovery()").QueryRow(func(row pgx.Row) error { return row.Scan(&rec) })
	b.Queue("SELECT EXISTS (SELECT 1 FROM rb_items WHERE id = $1)", id).QueryRow(func(row pgx.Row) error { return row.Scan(&found) })
	err = r.ReadBatch(ctx, b)
	where = "primary"
	if rec {
		where = "replica"
	}
	return where, found, err
}

// ReadBatch runs a batch of reads on the replica, or on the primary for a
// token the replica has not replayed; a batch that writes is retried on the
// primary (a routing bug, logged); SQL errors and a callback's errors are
// returned, not retried; a closed router says ErrClosed.
func TestReadBatch(t *testing.T) {
	f := testinfra.Postgres(t)
	log, buf := newLog()
	r := newReal(t, f, Options{Logger: log})
	ctx := context.Background()
	mustExec(t, r, "CREATE TABLE rb_items (id int PRIMARY KEY)")
	mustExec(t, r, "INSERT INTO rb_items VALUES (1)")
	f.WaitReplicaCaughtUp()

	reads := r.Stats().Replicas[0].Reads
	if where, found, err := readBatch(ctx, r, 1); err != nil || where != "replica" || !found {
		t.Fatalf("ReadBatch: %s found=%v %v; want the row from the replica", where, found, err)
	}
	if st := r.Stats(); st.Replicas[0].Reads != reads+1 || st.Replicas[0].InFlight != 0 {
		t.Fatalf("replica stats after one batch: %+v", st.Replicas[0])
	}

	// A write the replica has not replayed: its token sends the batch to
	// the primary, which has the row.
	f.PauseReplay()
	mustExec(t, r, "INSERT INTO rb_items VALUES (2)")
	tok, err := r.WriteToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if where, found, err := readBatch(ctx, r, 2); err != nil || where != "replica" || found {
		t.Fatalf("without the token: %s found=%v %v; want a stale read on the replica (the setup)", where, found, err)
	}
	if where, found, err := readBatch(WithToken(ctx, tok), r, 2); err != nil || where != "primary" || !found {
		t.Fatalf("with the token: %s found=%v %v; want the row from the primary", where, found, err)
	}
	f.ResumeReplay()
	f.WaitReplicaCaughtUp()

	// A batch that writes fails on the replica (25006) and runs again on the
	// primary, once.
	b := &pgx.Batch{}
	b.Queue("INSERT INTO rb_items VALUES (3)")
	if err := r.ReadBatch(ctx, b); err != nil {
		t.Fatalf("a writing batch: %v; want it retried on the primary", err)
	}
	var n int
	if err := r.PrimaryPool().QueryRow(ctx, "SELECT count(*) FROM rb_items WHERE id = 3").Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows written by the retried batch: %d %v", n, err)
	}
	if st := r.Stats(); st.ReadOnlyRetries != 1 || buf.Count("routing bug") != 1 {
		t.Fatalf("ReadOnlyRetries %d, log:\n%s", st.ReadOnlyRetries, buf)
	}

	// SQL errors and callback errors come back as they are, not retried.
	primaryReads := r.Stats().Primary.Reads
	b = &pgx.Batch{}
	b.Queue("SELECT 1/0")
	var pe *pgconn.PgError
	if err := r.ReadBatch(ctx, b); !errors.As(err, &pe) || pe.Code != "22012" {
		t.Fatalf("1/0: %v", err)
	}
	b = &pgx.Batch{}
	var id int
	b.Queue("SELECT id FROM rb_items WHERE id = 99").QueryRow(func(row pgx.Row) error { return row.Scan(&id) })
	if err := r.ReadBatch(ctx, b); !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("no row: %v; want pgx.ErrNoRows", err)
	}
	if st := r.Stats(); st.Primary.Reads != primaryReads || st.ReplicaRetries != 0 || !st.Replicas[0].Healthy || st.Replicas[0].InFlight != 0 {
		t.Fatalf("an error was retried or counted against the replica: %+v", st)
	}

	r.Close()
	if err := r.ReadBatch(ctx, &pgx.Batch{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// A replica that went down since its last check fails the batch, which
// runs again on the primary: no failed read.
func TestReadBatchReplicaDown(t *testing.T) {
	f := testinfra.PostgresExclusive(t)
	r := newReal(t, f, Options{Interval: time.Hour}) // no check sees it go
	ctx := context.Background()
	mustExec(t, r, "CREATE TABLE rb_items (id int PRIMARY KEY)")
	mustExec(t, r, "INSERT INTO rb_items VALUES (1)")
	f.WaitReplicaCaughtUp()
	if where, _, err := readBatch(ctx, r, 1); err != nil || where != "replica" {
		t.Fatalf("before the stop: %s %v", where, err)
	}
	f.StopReplica(testinfra.StopImmediate)
	t.Cleanup(f.StartReplica)
	if where, found, err := readBatch(ctx, r, 1); err != nil || where != "primary" || !found {
		t.Fatalf("replica down: %s found=%v %v; want the row from the primary", where, found, err)
	}
	if st := r.Stats(); st.ReplicaRetries != 1 || st.Replicas[0].InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// The pools Open makes count and log each statement of a batch as they do
// a query (their Tracer is a pgx.BatchTracer too): a slow one at Warn, the
// others at Debug, errors counted.
func TestOpenTracerCountsBatches(t *testing.T) {
	f := testinfra.Postgres(t)
	log, buf := newLog()
	ctx := context.Background()
	r, err := Open(ctx, f.PrimaryURL, []string{f.ReplicaURL}, Options{SlowQuery: 50 * time.Millisecond, Logger: log,
		ReplicaNames: []string{"replica-a"}, CheckTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var one, two int
	b := &pgx.Batch{}
	b.Queue("SELECT 1 FROM pg_sleep(0.06)").QueryRow(func(row pgx.Row) error { return row.Scan(&one) })
	b.Queue("SELECT 2 AS batch_second").QueryRow(func(row pgx.Row) error { return row.Scan(&two) })
	if err := r.ReadBatch(ctx, b); err != nil || one != 1 || two != 2 {
		t.Fatalf("ReadBatch: %d %d %v", one, two, err)
	}
	b = &pgx.Batch{}
	b.Queue("SELECT 1/0")
	if err := r.ReadBatch(ctx, b); err == nil {
		t.Fatal("1/0 in a batch: no error")
	}
	rq := r.Stats().Replicas[0].Queries
	if rq.Queries != 3 || rq.Slow != 1 || rq.Errors != 1 {
		t.Fatalf("replica tracer stats %+v; want 3 statements, 1 slow, 1 error", rq)
	}
	if !strings.Contains(buf.String(), "slow query") || !strings.Contains(buf.String(), "batch_second") {
		t.Fatalf("log:\n%s", buf)
	}
}
