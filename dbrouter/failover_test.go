package dbrouter

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// ackWriter inserts increasing ids through the router until stopped,
// keeping the ids whose INSERT was acknowledged; a failed one is not
// retried (it may or may not have committed) and the next id is tried.
type ackWriter struct {
	mu       sync.Mutex
	acked    []int64
	failures int
	errs     []string
	// after, once set, is a time; firstOK is the first acknowledgement
	// of an INSERT that started after it.
	after, firstOK time.Time
	stop           chan struct{}
	done           chan struct{}
}

func startWriter(r *Router, from int64) *ackWriter {
	w := &ackWriter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for id := from; ; id++ {
			select {
			case <-w.stop:
				return
			default:
			}
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := r.Exec(ctx, "INSERT INTO acked (id) VALUES ($1)", id)
			cancel()
			w.mu.Lock()
			if err == nil {
				w.acked = append(w.acked, id)
				if !w.after.IsZero() && w.firstOK.IsZero() && !start.Before(w.after) {
					w.firstOK = time.Now()
				}
			} else {
				w.failures++
				if len(w.errs) < 5 {
					w.errs = append(w.errs, err.Error())
				}
			}
			w.mu.Unlock()
			if err != nil {
				// Not synchronisation: a failing writer backs off a little,
				// as a real client would, instead of spinning.
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	return w
}

// writeAndCount inserts ids from, from+1, ... (n of them) through r and
// counts them on the old primary's and on the promoted replica's copy.
func writeAndCount(t *testing.T, r *Router, f *testinfra.PostgresFixture, from int64, n int) (onOld, onNew int) {
	t.Helper()
	ctx := context.Background()
	for id := from; id < from+int64(n); id++ {
		if _, err := r.Exec(ctx, "INSERT INTO acked (id) VALUES ($1)", id); err != nil {
			t.Fatalf("write %d after the failover: %v", id, err)
		}
	}
	for _, c := range []struct {
		p *pgxpool.Pool
		n *int
	}{{f.Primary, &onOld}, {f.Replica, &onNew}} {
		if err := c.p.QueryRow(ctx, "SELECT count(*) FROM acked WHERE id BETWEEN $1 AND $2", from, from+int64(n)-1).Scan(c.n); err != nil {
			t.Fatal(err)
		}
	}
	return onOld, onNew
}

func (w *ackWriter) markAfter(t time.Time) {
	w.mu.Lock()
	w.after = t
	w.mu.Unlock()
}

func (w *ackWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *ackWriter) resumed() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.firstOK
}

func (w *ackWriter) halt() []int64 {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.acked...)
}

// On a cluster of its own, with Options.Failover and the default 1s
// Interval: a writer runs through the router while the primary is stopped
// (fast shutdown: every acknowledged commit reaches the replica) and the
// replica promoted with pg_ctl promote. Writes resume on the promoted
// replica within 2s of the promote command, every acknowledged id is on
// it, tokens carry timeline 2, a token from before the failover is
// satisfied (its write is before the switch point, which matches the
// timeline history file) and one past the switch point is counted lost.
// A second router connected as a role that may not read the history file
// finds the same switch point from the promoted server's last replayed
// LSN.
// The old primary restarted as it was (not demoted: a split brain, both
// writable) gets no writes, and the split is logged once; stopped for good,
// writes go on.
func TestFailover(t *testing.T) {
	f := testinfra.PostgresExclusive(t)
	log, buf := newLog()
	ctx := context.Background()
	r := newReal(t, f, Options{Failover: true, Interval: time.Second, CheckTimeout: time.Second, Logger: log})
	mustExec(t, r, "CREATE TABLE acked (id bigint PRIMARY KEY)")
	mustExec(t, r, "INSERT INTO acked VALUES (-1)")
	before, err := r.WriteToken(ctx)
	if err != nil || before.Timeline != 1 {
		t.Fatalf("token before the failover: %+v, %v", before, err)
	}
	f.WaitReplicaCaughtUp()

	// A second router as a role that may not read the timeline history
	// file: it takes the switch point from the promoted server's last
	// replayed LSN, having watched the promotion.
	mustExec(t, r, "CREATE ROLE app LOGIN; GRANT ALL ON acked TO app")
	appPool := func(u string) *pgxpool.Pool {
		p, err := pgxpool.New(ctx, strings.Replace(u, "//postgres@", "//app@", 1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	f.WaitReplicaCaughtUp()
	logB, bufB := newLog()
	rb, err := New(ctx, Options{Primary: appPool(f.PrimaryURL), Replicas: []*pgxpool.Pool{appPool(f.ReplicaURL)}, Failover: true,
		Interval: 100 * time.Millisecond, CheckTimeout: testinfra.CallTimeout, Logger: logB})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()

	w := startWriter(r, 1)
	poll.Until(t, 10*time.Second, "acknowledged writes", func() bool { return w.count() >= 50 })
	f.StopPrimary(testinfra.StopFast)
	ackedBefore := w.count()
	// When the server became writable, by a 10ms poll of its own.
	writable := make(chan time.Time, 1)
	go func() {
		for {
			var rec bool
			err := f.Replica.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec)
			if err == nil && !rec {
				writable <- time.Now()
				return
			}
			time.Sleep(10 * time.Millisecond) // a poll, not synchronisation
		}
	}()
	promote := time.Now()
	w.markAfter(promote)
	f.PromoteReplica()
	promoted := time.Since(promote)
	poll.Until(t, 10*time.Second, "a write through the router after the promotion", func() bool { return !w.resumed().IsZero() })
	resume := w.resumed().Sub(promote)
	detect := w.resumed().Sub(<-writable)
	poll.Until(t, 10*time.Second, "more writes", func() bool { return w.count() >= ackedBefore+50 })
	acked := w.halt()
	t.Logf("failover: pg_ctl promote took %v; first write through the router acknowledged %v after the promote began, %v after the server was writable; %d writes acknowledged, %d failed (%v)",
		promoted, resume, detect, len(acked), w.failures, w.errs)
	if resume > 2*time.Second {
		t.Errorf("writes resumed %v after the promote, want <= 2s", resume)
	}

	// Every acknowledged write is on the new primary.
	var found int
	if err := f.Replica.QueryRow(ctx, "SELECT count(*) FROM acked WHERE id = ANY($1)", acked).Scan(&found); err != nil {
		t.Fatal(err)
	}
	if found != len(acked) {
		t.Fatalf("%d of %d acknowledged writes on the new primary: %d lost", found, len(acked), len(acked)-found)
	}
	st := r.Stats()
	if st.Failovers != 1 || st.Primary.Server != st.Replicas[0].Name || st.Primary.Timeline != 2 || !st.Primary.Up || st.Replicas[0].Healthy {
		t.Fatalf("stats after the failover: %+v\n%s", st, buf)
	}
	if buf.Count("failover: writes now go to the promoted server") != 1 {
		t.Fatalf("failover not logged once:\n%s", buf)
	}

	// Tokens: after, timeline 2; before, satisfied; past the switch, lost.
	after, err := r.WriteToken(ctx)
	if err != nil || after.Timeline != 2 {
		t.Fatalf("token after the failover: %+v, %v", after, err)
	}
	var history, replay string
	if err := f.Replica.QueryRow(ctx, "SELECT pg_read_file('pg_wal/00000002.history'), pg_last_wal_replay_lsn()::text").Scan(&history, &replay); err != nil {
		t.Fatal(err)
	}
	end := r.tl.Load().ends[1]
	if end.String() != replay || before.LSN > end {
		t.Fatalf("switch point %s; replay LSN %s, history %q; token before %s", end, replay, history, before)
	}
	poll.Until(t, 10*time.Second, "the unprivileged router's failover", func() bool { return rb.Stats().Failovers == 1 })
	if endB := rb.tl.Load().ends[1]; endB != end || bufB.Count(`switch_points_from="last replayed LSN at promotion"`) != 1 {
		t.Fatalf("unprivileged router: switch point %s, want %s (history file)\n%s", endB, end, bufB)
	}
	var n int
	if err := r.QueryRow(WithToken(ctx, before), "SELECT count(*) FROM acked WHERE id = -1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("read with the token from before: %d rows, %v", n, err)
	}
	if !r.survived(ctx, before) || r.Stats().LostTokens != 0 {
		t.Fatalf("token from before the failover not satisfied: %+v", r.Stats())
	}
	lost := Token{LSN: end + 100, Timeline: 1}
	if got := served(t, WithToken(ctx, lost), r); got != "primary" || r.Stats().LostTokens != 1 || buf.Count("lost in a failover") != 1 {
		t.Fatalf("lost token went to %s: %+v\n%s", got, r.Stats(), buf)
	}

	// The old primary back as it was: writable on timeline 1.
	f.StartPrimary()
	poll.Until(t, 10*time.Second, "the split brain seen", func() bool { return r.Stats().SplitBrains > 0 })
	onOld, onNew := writeAndCount(t, r, f, 1_000_000, 100)
	if onOld != 0 || onNew != 100 || r.Stats().Failovers != 1 || buf.Count("split brain") != 1 {
		t.Fatalf("split brain: %d writes on the old primary, %d on the new; %+v\n%s", onOld, onNew, r.Stats(), buf)
	}

	// The old primary gone for good.
	f.StopPrimary(testinfra.StopImmediate)
	splits := r.Stats().SplitBrains
	checks := r.Stats().Primary.Checks
	poll.Until(t, 10*time.Second, "two more checks", func() bool { return r.Stats().Primary.Checks >= checks+2 })
	if _, err := r.Exec(ctx, "INSERT INTO acked (id) VALUES (2000000)"); err != nil {
		t.Fatalf("write with the old primary gone: %v", err)
	}
	if st := r.Stats(); st.SplitBrains > splits+1 || st.Failovers != 1 || !st.Primary.Up {
		t.Fatalf("old primary gone: %+v", st)
	}
	t.Logf("log:\n%s", buf)
}

// A switchover by a cluster manager that fences the old primary by making
// it read-only (default_transaction_read_only, reloaded) rather than
// stopping it, then promotes the replica: writes move to the promoted
// replica, none reach the old primary (still up, read-only: not a split
// brain), and a write token taken before is satisfied.
func TestFailoverReadOnlyOldPrimary(t *testing.T) {
	f := testinfra.PostgresExclusive(t)
	log, buf := newLog()
	ctx := context.Background()
	r := newReal(t, f, Options{Failover: true, Interval: 100 * time.Millisecond, Logger: log})
	mustExec(t, r, "CREATE TABLE acked (id bigint PRIMARY KEY)")
	mustExec(t, r, "INSERT INTO acked VALUES (-1)")
	before, err := r.WriteToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Primary.Exec(ctx, "ALTER SYSTEM SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // before the fixture's, which drops the database
		if _, err := f.Primary.Exec(ctx, "ALTER SYSTEM RESET default_transaction_read_only"); err == nil {
			_, _ = f.Primary.Exec(ctx, "SELECT pg_reload_conf()")
		}
	})
	if _, err := f.Primary.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the read-only primary reported down", func() bool {
		st := r.Stats().Primary
		return !st.Up && strings.Contains(st.LastError, "read_only")
	})
	f.WaitReplicaCaughtUp()
	f.PromoteReplica()
	poll.Until(t, 10*time.Second, "the failover", func() bool { return r.Stats().Failovers == 1 })
	onOld, onNew := writeAndCount(t, r, f, 1, 50)
	st := r.Stats()
	if onOld != 0 || onNew != 50 || st.SplitBrains != 0 || st.Primary.Timeline != 2 || !strings.Contains(buf.String(), "old_primary_state=read-only") {
		t.Fatalf("%d writes on the old primary, %d on the new; %+v\n%s", onOld, onNew, st, buf)
	}
	if !r.survived(ctx, before) || r.Stats().LostTokens != 0 {
		t.Fatalf("token from before not satisfied: %+v", r.Stats())
	}
}
