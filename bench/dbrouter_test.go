package bench

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// usersRouter is a router over the fixture's primary and replica, with a
// table of 1,000 users the replica has replayed; closed by b's cleanup.
func usersRouter(b *testing.B) (*testinfra.PostgresFixture, *dbrouter.Router) {
	f := testinfra.Postgres(b)
	ctx := context.Background()
	if _, err := f.Primary.Exec(ctx, `CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
		INSERT INTO users SELECT g, 'user-' || g FROM generate_series(1, 1000) g`); err != nil {
		b.Fatal(err)
	}
	f.WaitReplicaCaughtUp()
	r, err := dbrouter.New(ctx, dbrouter.Options{Primary: f.Primary, Replicas: []*pgxpool.Pool{f.Replica}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	if !r.Stats().Replicas[0].Healthy {
		b.Fatal("replica not healthy")
	}
	return f, r
}

// BenchmarkQueryRow is one primary-key read of a small row from the real
// streaming replica on loopback, from parallel goroutines: straight
// through the replica's pgxpool, and through a dbrouter.Router over the
// same pools (routing to the replica by least in-flight, the monitor
// running at its default 1s). The difference is the router's overhead.
func BenchmarkQueryRow(b *testing.B) {
	f, r := usersRouter(b)
	ctx := context.Background()
	for _, impl := range []struct {
		name string
		q    dbrouter.Querier
	}{
		{"pgxpool", f.Replica},
		{"dbrouter", r},
	} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var name string
				id := 0
				for pb.Next() {
					id = id%1000 + 1
					if err := impl.q.QueryRow(ctx, "SELECT name FROM users WHERE id = $1", id).Scan(&name); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	if st := r.Stats(); st.Primary.Reads != 0 || st.Fallbacks != 0 {
		b.Fatalf("router reads left the replica: %+v", st)
	}
}

// BenchmarkReadWithLSN is the example service's user read: the replica's
// replay position, then a row, both on one server (the position read
// first, so the row is at least as fresh). As a read-only transaction
// through the router (BEGIN, two SELECTs, COMMIT: four round trips) and as
// one ReadBatch (one round trip), from parallel goroutines. srv-µs/op is
// the replica's CPU per read (its postmaster and backends, /proc stat).
func BenchmarkReadWithLSN(b *testing.B) {
	f, r := usersRouter(b)
	ctx := context.Background()
	const lsnSQL = `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text`
	const rowSQL = `SELECT name FROM users WHERE id = $1`
	server := postmasterPID(b, f.Replica)
	for _, impl := range []struct {
		name string
		read func(id int) error
	}{
		{"tx", func(id int) error {
			return pgx.BeginTxFunc(ctx, r, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
				var lsn, name string
				if err := tx.QueryRow(ctx, lsnSQL).Scan(&lsn); err != nil {
					return err
				}
				return tx.QueryRow(ctx, rowSQL, id).Scan(&name)
			})
		}},
		{"readbatch", func(id int) error {
			var lsn, name string
			bt := &pgx.Batch{}
			bt.Queue(lsnSQL).QueryRow(func(row pgx.Row) error { return row.Scan(&lsn) })
			bt.Queue(rowSQL, id).QueryRow(func(row pgx.Row) error { return row.Scan(&name) })
			return r.ReadBatch(ctx, bt)
		}},
	} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			c0 := procTreeCPU(server)
			b.RunParallel(func(pb *testing.PB) {
				id := 0
				for pb.Next() {
					id = id%1000 + 1
					if err := impl.read(id); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(procTreeCPU(server)-c0)*1e6/clockTicks/float64(b.N), "srv-µs/op")
		})
	}
	if st := r.Stats(); st.Primary.Reads != 0 || st.Fallbacks != 0 {
		b.Fatalf("router reads left the replica: %+v", st)
	}
}
