package dbrouter

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// On a cluster of its own (it stops servers): a replica down at start-up
// joins when it comes up; a replica killed (pg_ctl stop -m immediate) under
// load costs no failed read (each read it fails runs again on the primary),
// is ejected and logged, and rejoins after ReadmitAfter good checks once it
// is back; with the primary down, reads stay on the replica and writes fail
// promptly with the pool's error.
func TestOutages(t *testing.T) {
	f := testinfra.PostgresExclusive(t)
	log, buf := newLog()
	ctx := context.Background()
	f.StopReplica(testinfra.StopFast)
	o := Options{Interval: 100 * time.Millisecond, EjectAfter: 2, ReadmitAfter: 3, Logger: log}
	r := newReal(t, f, o)

	// Down at start-up: reads fall back to the primary, then it joins.
	if st := r.Stats(); st.Replicas[0].Healthy {
		t.Fatalf("a stopped replica is healthy: %+v", st.Replicas[0])
	}
	if got := served(t, ctx, r); got != "primary" || r.Stats().Fallbacks != 1 {
		t.Fatalf("read with the replica down: %s, %+v", got, r.Stats())
	}
	f.StartReplica()
	d := poll.Until(t, 10*time.Second, "the replica to join", func() bool { return r.Stats().Replicas[0].Healthy })
	t.Logf("joined %v after it started", d)
	if got := served(t, ctx, r); got != "replica" || buf.Count("replica joined") != 1 {
		t.Fatalf("after joining: %s\n%s", got, buf)
	}

	// Kill it under load.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// cut counts Query reads the kill ended after rows were already
	// handed to the caller: those cannot run again on the primary (the
	// caller has seen rows), so Rows.Err reports the loss, as documented.
	var reads, failed, cut atomic.Int64
	var errMu sync.Mutex
	var errs []string
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var rec bool
				var err error
				if (g+i)%2 == 0 {
					err = r.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec)
				} else {
					rows, qerr := r.Query(ctx, "SELECT pg_is_in_recovery() FROM generate_series(1, 3)")
					if err = qerr; err == nil {
						n := 0
						for rows.Next() {
							err = rows.Scan(&rec)
							n++
						}
						if rerr := rows.Err(); rerr != nil {
							err = rerr
							if n > 0 {
								cut.Add(1)
								err = nil
							}
						}
						rows.Close()
					}
				}
				reads.Add(1)
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					errs = append(errs, fmt.Sprintf("%T %v", err, err))
					errMu.Unlock()
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	before := r.Stats().Replicas[0].Reads
	f.StopReplica(testinfra.StopImmediate)
	d = poll.Until(t, 10*time.Second, "ejection", func() bool { return !r.Stats().Replicas[0].Healthy })
	t.Logf("ejected %v after the kill", d)
	time.Sleep(300 * time.Millisecond) // load on the primary alone
	f.StartReplica()
	d = poll.Until(t, 10*time.Second, "readmission", func() bool { return r.Stats().Replicas[0].Healthy })
	t.Logf("readmitted %v after it accepted connections again (ReadmitAfter %d x Interval %v)", d, o.ReadmitAfter, o.Interval)
	if d > time.Duration(o.ReadmitAfter+1)*o.Interval+2*time.Second {
		t.Errorf("readmission took %v", d)
	}
	afterReadmit := r.Stats().Replicas[0].Reads
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	st := r.Stats()
	t.Logf("log:\n%s", buf)
	t.Logf("%d reads under load, %d failed, %d cut after their first row; replica retries %d, replica reads %d, fallbacks %d", reads.Load(), failed.Load(), cut.Load(), st.ReplicaRetries, st.Replicas[0].Reads, st.Fallbacks)
	if failed.Load() != 0 {
		t.Fatalf("%d failed reads: %v", failed.Load(), errs[:min(len(errs), 5)])
	}
	if st.Replicas[0].Ejections < 1 || buf.Count("replica ejected") < 1 || st.Replicas[0].Readmissions < 1 || before == 0 || st.Replicas[0].Reads <= afterReadmit || st.Fallbacks == 0 {
		t.Fatalf("stats %+v\nlog:\n%s", st, buf)
	}
	if st.Replicas[0].InFlight != 0 {
		t.Fatalf("%d reads left in flight", st.Replicas[0].InFlight)
	}

	// The primary down: reads stay on the replica, writes fail promptly.
	f.StopPrimary(testinfra.StopFast)
	for range 20 {
		if got := served(t, ctx, r); got != "replica" {
			t.Fatalf("read with the primary down: %s", got)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := r.Exec(wctx, "SELECT 1"); err == nil {
		t.Fatal("Exec with the primary down succeeded")
	} else {
		t.Logf("Exec with the primary down failed in %v: %v", time.Since(start), err)
	}
	// The monitor logs a change after it made it visible in Stats: wait
	// for both (CI once read the log between the two).
	poll.Until(t, 10*time.Second, "the primary reported down", func() bool {
		return !r.Stats().Primary.Up && buf.Count("primary check failed") >= 1
	})
	if buf.Count("primary check failed") != 1 || !r.Stats().Replicas[0].Healthy {
		t.Fatalf("primary down: %+v\n%s", r.Stats(), buf)
	}
	f.StartPrimary()
	poll.Until(t, 10*time.Second, "the primary back", func() bool {
		return r.Stats().Primary.Up && buf.Count("primary is back") >= 1
	})
	if buf.Count("primary is back") != 1 {
		t.Fatalf("log:\n%s", buf)
	}
}
