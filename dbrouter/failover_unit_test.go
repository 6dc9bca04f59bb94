package dbrouter

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scalekit-go/scalekit/internal/poll"
)

// promoted is a promoted replica's answer: a primary at lsn on timeline
// tli, whose last replayed LSN (the switch point) is replay.
func promoted(lsn, replay LSN, tli uint32) replicaStatus {
	return replicaStatus{write: lsn, insert: lsn, lsn: replay, tli: tli}
}

// standby is a replica's answer on timeline tli.
func standby(lsn LSN, tli uint32) replicaStatus {
	return replicaStatus{lsn: lsn, inRecovery: true, readOnly: true, tli: tli}
}

// With Failover, the primary unreachable and r0 promoted: writes move to r0
// at the next check, logged and counted; r0 leaves the read set at once; the
// switch point comes from the history file, else from r0's last replayed
// LSN (the router saw it in recovery). Tokens: one of timeline 1 at or
// before the switch point is satisfied by r1 (following the new primary),
// one past it was lost (primary, counted, logged once at Warn), one
// without a timeline behaves as before. A replica still on timeline 1 past
// the switch point (it followed the old primary after the fork) is
// ejected as diverged. The old primary back as it was (writable, timeline
// 1: a split brain) is never written to: counted, logged at Error once.
func TestFailoverUnit(t *testing.T) {
	for _, fromHistory := range []bool{true, false} {
		name := "replay-lsn"
		if fromHistory {
			name = "history-file"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				log, buf := newLog()
				o, _ := Options{Interval: time.Second, Failover: true, EjectAfter: 2, ReadmitAfter: 1, Logger: log}.withDefaults()
				fp := &fakeProber{primary: 1000, insert: 1000, tli: 1, reps: []replicaStatus{standby(1000, 1), standby(1000, 1)}, histErr: errors.New("permission denied for function pg_read_file")}
				if fromHistory {
					fp.histErr = nil
					fp.hist = map[uint32]map[uint32]LSN{2: {1: 1500}}
				}
				r := newRouter(o, []string{"r0", "r1"}, fp)
				r.start(context.Background())
				defer r.Close()
				step := func() { time.Sleep(o.Interval); synctest.Wait() }
				ctx := context.Background()
				if st := r.Stats(); st.Primary.Server != "primary" || st.Primary.Timeline != 1 || !st.Primary.Up {
					t.Fatalf("start: %+v", st.Primary)
				}
				tok, err := r.WriteToken(ctx)
				if err != nil || tok.Timeline != 1 || tok.LSN != 1000 {
					t.Fatalf("token %+v, %v", tok, err)
				}

				// Writes on timeline 1 up to 1600; r0 replayed 1500, then the
				// primary dies and r0 is promoted at 1500.
				fp.set(0, standby(1500, 1))
				step()
				fp.setPrimary(0, errDown)
				fp.set(0, promoted(1700, 1500, 2))
				fp.set(1, standby(1550, 2)) // follows r0: timeline 2
				fp.mu.Lock()
				fp.insert, fp.tli = 1700, 2
				fp.mu.Unlock()
				step()
				st := r.Stats()
				if r.w().idx != 1 || st.Failovers != 1 || st.Primary.Server != "r0" || st.Primary.Timeline != 2 || !st.Primary.Up || st.Replicas[0].Healthy {
					t.Fatalf("after the promotion: writer %d, %+v", r.w().idx, st)
				}
				if end := r.tl.Load().ends[1]; end != 1500 {
					t.Fatalf("switch point %s, want 0/5DC", end)
				}
				if buf.Count("failover: writes now go to the promoted server") != 1 || !strings.Contains(buf.String(), "old_primary_state=unreachable") {
					t.Fatalf("failover not logged:\n%s", buf)
				}
				if tok, _ := r.WriteToken(ctx); tok.Timeline != 2 {
					t.Fatalf("token after failover %+v", tok)
				}
				for _, c := range []struct {
					tok  Token
					want string
				}{
					{Token{LSN: 1400, Timeline: 1}, "r1"},      // before the switch: survived
					{Token{LSN: 1500, Timeline: 1}, "r1"},      // at it
					{Token{LSN: 1540, Timeline: 2}, "r1"},      // on the new timeline, replayed
					{Token{LSN: 1600, Timeline: 2}, "primary"}, // not yet replayed
					{Token{LSN: 1540}, "r1"},                   // no timeline: as before
					{Token{LSN: 1501, Timeline: 1}, "primary"}, // lost
					{Token{LSN: 1520, Timeline: 1}, "primary"}, // lost
					{Token{LSN: 1540, Timeline: 3}, "primary"}, // a timeline the router has not seen
				} {
					if got := routeName(r, WithToken(ctx, c.tok)); got != c.want {
						t.Fatalf("token %s went to %s, want %s", c.tok, got, c.want)
					}
				}
				if st := r.Stats(); st.LostTokens != 2 || buf.Count("lost in a failover") != 2 || strings.Count(buf.String(), "level=WARN msg=\"dbrouter: a token's write") != 1 {
					t.Fatalf("lost tokens %d, log:\n%s", st.LostTokens, buf)
				}

				// r1 on timeline 1 past the switch point: diverged.
				fp.set(1, standby(1560, 1))
				step()
				step()
				if st := r.Stats().Replicas[1]; st.Healthy || !strings.Contains(st.Reason, "diverged") {
					t.Fatalf("diverged replica kept: %+v", st)
				}
				fp.set(1, standby(1560, 2))
				step()

				// The old primary back as a standby of r0 (demoted): not a
				// candidate, no split brain.
				fp.mu.Lock()
				fp.pst = &replicaStatus{lsn: 1600, inRecovery: true, readOnly: true, tli: 2}
				fp.mu.Unlock()
				step()
				if st := r.Stats(); r.w().idx != 1 || st.SplitBrains != 0 || !st.Primary.Up {
					t.Fatalf("old primary back as a standby: writer %d, %+v", r.w().idx, st)
				}

				// The old primary back as it was: a split brain.
				fp.mu.Lock()
				fp.pst = &replicaStatus{write: 1600, insert: 1600, tli: 1}
				fp.mu.Unlock()
				step()
				step()
				st = r.Stats()
				if r.w().idx != 1 || st.Failovers != 1 || st.SplitBrains != 2 || buf.Count("split brain") != 1 || !st.Replicas[1].Healthy {
					t.Fatalf("split brain: writer %d, %+v\n%s", r.w().idx, st, buf)
				}
				// r0 unreachable now: writes still never go to the old primary.
				fp.set(0, replicaStatus{err: errDown})
				step()
				if r.w().idx != 1 || r.Stats().Primary.Up {
					t.Fatalf("writes moved to the stale primary: writer %d, %+v", r.w().idx, r.Stats().Primary)
				}
			})
		})
	}
}

// Without a history file and without having seen the promotion (the
// router started after it), a timeline-1 token cannot be judged: it goes
// to the primary, not counted lost. Timeline-2 tokens route as usual.
func TestFailoverUnknownSwitchPoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o, _ := Options{Interval: time.Second, Failover: true}.withDefaults()
		fp := &fakeProber{primaryErr: errDown, insert: 1700, tli: 2, reps: []replicaStatus{promoted(1700, 1500, 2), standby(1700, 2)}, histErr: errors.New("permission denied")}
		r := newRouter(o, []string{"r0", "r1"}, fp)
		r.start(context.Background())
		defer r.Close()
		ctx := context.Background()
		if r.w().idx != 1 || r.Stats().Primary.Timeline != 2 {
			t.Fatalf("start with the primary down and r0 promoted: writer %d, %+v", r.w().idx, r.Stats().Primary)
		}
		if got := routeName(r, WithToken(ctx, Token{LSN: 1400, Timeline: 1})); got != "primary" {
			t.Fatalf("unjudgeable token went to %s", got)
		}
		if got := routeName(r, WithToken(ctx, Token{LSN: 1600, Timeline: 2})); got != "r1" {
			t.Fatalf("timeline-2 token went to %s", got)
		}
		if st := r.Stats(); st.LostTokens != 0 {
			t.Fatalf("counted lost: %+v", st)
		}
	})
}

// Without Failover a promoted replica is only ejected: writes stay on the
// configured primary, even when it is down.
func TestNoFailoverByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, fp := newFake(t, Options{Interval: time.Second, EjectAfter: 1}, 1)
		defer r.Close()
		fp.setPrimary(0, errDown)
		fp.set(0, promoted(200, 100, 2))
		time.Sleep(2 * time.Second)
		synctest.Wait()
		st := r.Stats()
		if r.w().idx != 0 || st.Failovers != 0 || st.Primary.Up || st.Replicas[0].Healthy {
			t.Fatalf("writer %d, %+v", r.w().idx, st)
		}
	})
}

// A primary that is read-only or a standby counts as down; with Failover,
// writes go to a promoted replica on the same timeline family. Two
// writable servers on the same timeline keep the current one.
func TestFailoverReadOnlyPrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, buf := newLog()
		o, _ := Options{Interval: time.Second, Failover: true, Logger: log}.withDefaults()
		fp := &fakeProber{primary: 100, insert: 100, tli: 1, reps: []replicaStatus{standby(100, 1)}}
		r := newRouter(o, []string{"r0"}, fp)
		r.start(context.Background())
		defer r.Close()
		step := func() { time.Sleep(o.Interval); synctest.Wait() }
		fp.mu.Lock()
		fp.pst = &replicaStatus{write: 100, insert: 100, tli: 1, readOnly: true}
		fp.mu.Unlock()
		step()
		if st := r.Stats(); st.Primary.Up || !strings.Contains(st.Primary.LastError, "read_only") || r.w().idx != 0 {
			t.Fatalf("read-only primary: %+v", st.Primary)
		}
		fp.set(0, promoted(200, 100, 1)) // same timeline (a misconfiguration): still the only candidate
		step()
		if r.w().idx != 1 || !strings.Contains(buf.String(), "old_primary_state=read-only") {
			t.Fatalf("writer %d\n%s", r.w().idx, buf)
		}
		fp.mu.Lock()
		fp.pst = &replicaStatus{write: 100, insert: 100, tli: 1}
		fp.mu.Unlock()
		step()
		if st := r.Stats(); r.w().idx != 1 || st.SplitBrains != 1 {
			t.Fatalf("a tie moved the writes: writer %d, %+v", r.w().idx, st)
		}
	})
}

// Reads, tokens, write tokens and Stats from many goroutines while the
// monitor (every 10ms) moves the writes back and forth between the two
// servers, each promotion on a new timeline: run with -race.
func TestFailoverHammer(t *testing.T) {
	o, _ := Options{Interval: 10 * time.Millisecond, Failover: true, EjectAfter: 1, ReadmitAfter: 1}.withDefaults()
	fp := &fakeProber{primary: 100, insert: 100, tli: 1, reps: []replicaStatus{standby(100, 1), standby(100, 1)}, hist: map[uint32]map[uint32]LSN{}}
	r := newRouter(o, []string{"r0", "r1"}, fp)
	r.start(context.Background())
	defer r.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			ctx := WithSession(context.Background(), Token{})
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tok := Token{LSN: LSN(100 + i%500), Timeline: uint32(1 + (g+i)%4)}
				if got := routeName(r, WithToken(ctx, tok)); got != "primary" && got != "r0" && got != "r1" {
					t.Errorf("read went to %q", got)
					return
				}
				if _, err := r.WriteToken(ctx); err != nil {
					t.Errorf("WriteToken: %v", err)
					return
				}
				r.noteWrite(ctx, nil)
				_ = r.Stats()
				_ = r.PrimaryPool()
			}
		})
	}
	// Promote r0 on timeline 2, then r1 on 3, r0 on 4, ...: each time
	// the other replicas follow.
	tli := uint32(1)
	for round := range 6 {
		tli++
		lsn := LSN(100 + 1000*round)
		fp.mu.Lock()
		fp.hist[tli] = map[uint32]LSN{tli - 1: lsn}
		fp.primaryErr = errDown
		fp.insert, fp.tli = lsn+500, tli
		p := round % 2
		fp.reps[p] = promoted(lsn+500, lsn, tli)
		fp.reps[1-p] = standby(lsn+400, tli)
		fp.mu.Unlock()
		poll.Until(t, 5*time.Second, "the failover", func() bool { return r.Stats().Primary.Timeline == tli })
		if w := r.w().idx; w != 1+p {
			t.Fatalf("round %d: writer %d, want %d", round, w, 1+p)
		}
	}
	close(stop)
	wg.Wait()
	if st := r.Stats(); st.Failovers != 6 {
		t.Fatalf("%d failovers, want 6", st.Failovers)
	}
}

// A zero Router (packages above use one in tests) answers Stats and its
// accessors as before failover state existed, without panicking.
func TestZeroRouterStats(t *testing.T) {
	r := new(Router)
	st := r.Stats()
	if st.Primary.Server != "primary" || st.Primary.Timeline != 0 || r.PrimaryPool() != nil {
		t.Fatalf("zero Router: %+v", st.Primary)
	}
	if tok, err := r.SessionToken(WithSession(context.Background(), Token{LSN: 5, Timeline: 1})); err != nil || tok.LSN != 5 {
		t.Fatalf("zero Router session token %+v, %v", tok, err)
	}
}
