package dbrouter

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

func TestOptionsErrorsNameTheField(t *testing.T) {
	cases := []struct {
		o     Options
		field string
	}{
		{Options{Balance: 7}, "Options.Balance"},
		{Options{Consistency: 3}, "Options.Consistency"},
		{Options{Interval: time.Millisecond}, "Options.Interval"},
		{Options{Interval: -time.Second}, "Options.Interval"},
		{Options{CheckTimeout: -1}, "Options.CheckTimeout"},
		{Options{MaxLagBytes: -1}, "Options.MaxLagBytes"},
		{Options{MaxLagBytes: 100, ReadmitLagBytes: 200}, "Options.ReadmitLagBytes"},
		{Options{ReadmitLagBytes: -5}, "Options.ReadmitLagBytes"},
		{Options{EjectAfter: -1}, "Options.EjectAfter"},
		{Options{ReadmitAfter: -1}, "Options.ReadmitAfter"},
		{Options{Window: -time.Second}, "Options.Window"},
		{Options{TokenWait: -time.Second}, "Options.TokenWait"},
		{Options{TokenPoll: -time.Second}, "Options.TokenPoll"},
		{Options{SlowQuery: -time.Second}, "Options.SlowQuery"},
		{Options{ReplicaNames: []string{"a"}}, "Options.ReplicaNames"},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			_, err := c.o.withDefaults()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("err = %v, want ErrInvalid naming %s", err, c.field)
			}
			_, err = New(context.Background(), c.o)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("New: err = %v, want ErrInvalid naming %s", err, c.field)
			}
		})
	}
	if _, err := New(context.Background(), Options{}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Options.Primary") {
		t.Fatalf("New without Primary: %v", err)
	}
	if _, err := Open(context.Background(), "postgres://127.0.0.1:1/x", nil, Options{ReplicaNames: []string{"a"}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "ReplicaNames") {
		t.Fatalf("Open with a name too many: %v", err)
	}
	if _, err := Open(context.Background(), "postgres://127.0.0.1:1/x", []string{"::not a conn string"}, Options{}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "replicaConns[0]") {
		t.Fatalf("Open with a bad replica string: %v", err)
	}
	if _, err := NewTracer(TracerOptions{SlowThreshold: -1}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "SlowThreshold") {
		t.Fatalf("NewTracer: %v", err)
	}
	o, err := Options{}.withDefaults()
	if err != nil || o.Interval != time.Second || o.CheckTimeout != time.Second || o.MaxLagBytes != 16<<20 ||
		o.ReadmitLagBytes != 8<<20 || o.EjectAfter != 2 || o.ReadmitAfter != 3 || o.Window != 5*time.Second {
		t.Fatalf("defaults: %+v %v", o, err)
	}
}

func TestLSNAndToken(t *testing.T) {
	for _, s := range []string{"0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF", "0/3000148"} {
		l, err := ParseLSN(s)
		if err != nil || l.String() != s {
			t.Fatalf("ParseLSN(%q) = %v %v", s, l, err)
		}
	}
	if l, _ := ParseLSN("16/B374D848"); l != 0x16_B374D848 {
		t.Fatalf("ParseLSN value %x", uint64(l))
	}
	for _, s := range []string{"", "1", "1/", "/1", "x/1", "100000000/0", "1/2/3"} {
		if _, err := ParseLSN(s); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParseLSN(%q) err = %v", s, err)
		}
	}
	tok := Token{LSN: 0x3000148, Time: time.UnixMilli(1767225600123)}
	if tok.String() != "0/3000148@1767225600123" {
		t.Fatalf("String %q", tok.String())
	}
	for _, in := range []Token{tok, {}, {LSN: 5}, {Time: time.UnixMilli(7)}} {
		out, err := ParseToken(in.String())
		if err != nil || out.LSN != in.LSN || !out.Time.Equal(in.Time) {
			t.Fatalf("round trip %+v -> %q -> %+v %v", in, in.String(), out, err)
		}
	}
	// With a timeline; the form without one (older tokens) still parses.
	tt := Token{LSN: 0x3000148, Time: time.UnixMilli(1767225600123), Timeline: 2}
	if tt.String() != "0/3000148@1767225600123@2" {
		t.Fatalf("String %q", tt.String())
	}
	if out, err := ParseToken(tt.String()); err != nil || out != (Token{LSN: tt.LSN, Time: out.Time, Timeline: 2}) || !out.Time.Equal(tt.Time) {
		t.Fatalf("round trip %+v -> %+v %v", tt, out, err)
	}
	if out, err := ParseToken("0/3000148@1767225600123"); err != nil || out.Timeline != 0 || out.LSN != 0x3000148 {
		t.Fatalf("old form: %+v %v", out, err)
	}
	for _, s := range []string{"0/1", "0/1@x", "zz@1", "0/1@-5", "0/1@5@0", "0/1@5@", "0/1@5@x", "0/1@5@4294967296", "0/1@5@2@3", "0/1@5@-2"} {
		if _, err := ParseToken(s); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParseToken(%q) err = %v", s, err)
		}
	}
	m := Token{LSN: 10, Time: time.UnixMilli(5)}.Merge(Token{LSN: 7, Time: time.UnixMilli(9)})
	if m.LSN != 10 || m.Time.UnixMilli() != 9 {
		t.Fatalf("Merge %+v", m)
	}
	// Different timelines: the later one's LSN (written after the fork).
	for _, c := range [][3]Token{
		{{LSN: 10, Timeline: 1}, {LSN: 7, Timeline: 2}, {LSN: 7, Timeline: 2}},
		{{LSN: 7, Timeline: 2}, {LSN: 10, Timeline: 1}, {LSN: 7, Timeline: 2}},
		{{LSN: 10, Timeline: 2}, {LSN: 7, Timeline: 2}, {LSN: 10, Timeline: 2}},
		{{LSN: 10}, {LSN: 7, Timeline: 2}, {LSN: 10, Timeline: 2}},
	} {
		if got := c[0].Merge(c[1]); got != c[2] {
			t.Fatalf("%+v.Merge(%+v) = %+v, want %+v", c[0], c[1], got, c[2])
		}
	}
	if !(Token{}).IsZero() || tok.IsZero() {
		t.Fatal("IsZero")
	}
	// WithToken merges with what ctx carries; Primary keeps the token.
	ctx := WithToken(WithToken(context.Background(), Token{LSN: 9}), Token{LSN: 3})
	ctx = Primary(ctx)
	if in := intentOf(ctx); in.tok.LSN != 9 || !in.primary {
		t.Fatalf("intent %+v", in)
	}
	if WithToken(context.Background(), Token{}) != context.Background() {
		t.Fatal("WithToken(zero) should not wrap")
	}
}

// A replica is ejected after EjectAfter bad checks in a row, not sooner,
// and readmitted after ReadmitAfter good ones, not sooner; reads meanwhile
// fall back to the primary, and both moves are logged and counted.
func TestHysteresis(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, buf := newLog()
		o := Options{Interval: time.Second, EjectAfter: 2, ReadmitAfter: 3, Logger: log}
		r, fp := newFake(t, o, 1)
		defer r.Close()
		step := func() { time.Sleep(o.Interval); synctest.Wait() }
		ctx := context.Background()
		if got := routeName(r, ctx); got != "r0" {
			t.Fatalf("read went to %s, want r0", got)
		}
		fp.set(0, replicaStatus{err: errDown})
		step()
		if got := routeName(r, ctx); got != "r0" {
			t.Fatalf("ejected after one bad check (read went to %s)", got)
		}
		fp.set(0, up(100)) // a good check resets the run
		step()
		fp.set(0, replicaStatus{err: errDown})
		step()
		if got := routeName(r, ctx); got != "r0" {
			t.Fatalf("a good check did not reset the bad run (read went to %s)", got)
		}
		step()
		if got := routeName(r, ctx); got != "primary" {
			t.Fatalf("not ejected after two bad checks (read went to %s)", got)
		}
		st := r.Stats()
		if st.Replicas[0].Healthy || st.Replicas[0].Ejections != 1 || !strings.Contains(st.Replicas[0].Reason, "connection refused") || st.Fallbacks != 1 {
			t.Fatalf("stats after ejection: %+v", st)
		}
		if buf.Count("replica ejected") != 1 {
			t.Fatalf("ejection not logged once:\n%s", buf)
		}
		fp.set(0, up(100))
		step()
		step()
		if got := routeName(r, ctx); got != "primary" {
			t.Fatalf("readmitted after two good checks (read went to %s)", got)
		}
		step()
		if got := routeName(r, ctx); got != "r0" {
			t.Fatalf("not readmitted after three good checks (read went to %s)", got)
		}
		if st := r.Stats(); st.Replicas[0].Readmissions != 1 || buf.Count("replica readmitted") != 1 {
			t.Fatalf("readmission not counted and logged: %+v\n%s", st, buf)
		}
	})
}

// Lag ejects above MaxLagBytes; an ejected replica counts good checks only
// under ReadmitLagBytes, so one hovering between the two stays out.
func TestLagHysteresis(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := Options{Interval: time.Second, MaxLagBytes: 1000, ReadmitLagBytes: 500, EjectAfter: 1, ReadmitAfter: 2}
		r, fp := newFake(t, o, 1)
		defer r.Close()
		step := func() { time.Sleep(o.Interval); synctest.Wait() }
		healthy := func() bool { return r.Stats().Replicas[0].Healthy }
		fp.setPrimary(100+900, nil) // 900 behind: under MaxLagBytes
		step()
		if st := r.Stats().Replicas[0]; !st.Healthy || st.LagBytes != 900 || !st.LagKnown {
			t.Fatalf("lag 900 of 1000: %+v", st)
		}
		fp.setPrimary(100+1500, nil)
		step()
		if st := r.Stats().Replicas[0]; st.Healthy || !strings.Contains(st.Reason, "MaxLagBytes") {
			t.Fatalf("lag 1500 > 1000 not ejected: %+v", st)
		}
		fp.set(0, up(100+800)) // 700 behind: under Max, over Readmit
		for range 5 {
			step()
		}
		if st := r.Stats().Replicas[0]; st.Healthy || !strings.Contains(st.Reason, "ReadmitLagBytes") {
			t.Fatalf("readmitted at lag 700 > ReadmitLagBytes 500: %+v", st)
		}
		fp.set(0, up(100+1200)) // 300 behind
		step()
		if healthy() {
			t.Fatal("readmitted after one good check")
		}
		step()
		if !healthy() {
			t.Fatalf("not readmitted at lag 300 after two checks: %+v", r.Stats().Replicas[0])
		}
		// The primary's check failing says nothing about lag: replicas stay.
		fp.setPrimary(0, errDown)
		step()
		step()
		st := r.Stats()
		if st.Primary.Up || st.Primary.CheckFailures != 2 || !st.Replicas[0].Healthy || st.Replicas[0].LagKnown {
			t.Fatalf("primary down: %+v", st)
		}
	})
}

// A replica down at start-up joins on its first good check; one that is not
// in recovery (promoted) is ejected.
func TestJoinAndPromotedReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := Options{Interval: time.Second, EjectAfter: 1, ReadmitAfter: 3}
		fp := &fakeProber{primary: 100, reps: []replicaStatus{{err: errDown}, up(100)}}
		oo, _ := o.withDefaults()
		r := newRouter(oo, []string{"r0", "r1"}, fp)
		r.start(context.Background())
		defer r.Close()
		step := func() { time.Sleep(o.Interval); synctest.Wait() }
		if st := r.Stats(); st.Replicas[0].Healthy || !st.Replicas[1].Healthy {
			t.Fatalf("start: %+v", st.Replicas)
		}
		fp.set(0, up(100))
		step()
		if st := r.Stats(); !st.Replicas[0].Healthy || st.Replicas[0].Readmissions != 0 {
			t.Fatalf("a replica down at start-up did not join on its first good check: %+v", st.Replicas[0])
		}
		fp.set(1, replicaStatus{lsn: 0, inRecovery: false})
		step()
		if st := r.Stats(); st.Replicas[1].Healthy || !strings.Contains(st.Replicas[1].Reason, "not in recovery") {
			t.Fatalf("promoted replica kept: %+v", st.Replicas[1])
		}
		for range 10 {
			if got := routeName(r, context.Background()); got != "r0" {
				t.Fatalf("read went to %s", got)
			}
		}
	})
}

// A read carrying a token goes only to replicas that have replayed it, by
// the cached LSNs: no poll, no round trip. With none, it goes to the
// primary; with TokenWait it polls and takes the replica once it catches up.
func TestTokenRouting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, fp := newFake(t, Options{Interval: time.Second}, 2)
		defer r.Close()
		fp.set(0, up(100))
		fp.set(1, up(200))
		time.Sleep(time.Second)
		synctest.Wait()
		bg := context.Background()
		for range 20 {
			if got := routeName(r, WithToken(bg, Token{LSN: 150})); got != "r1" {
				t.Fatalf("token 150 went to %s, want r1 (replay 200)", got)
			}
		}
		seen := map[string]bool{}
		for range 20 {
			seen[routeName(r, WithToken(bg, Token{LSN: 100}))] = true
		}
		if !seen["r0"] || !seen["r1"] {
			t.Fatalf("token 100 should spread over both: %v", seen)
		}
		if got := routeName(r, WithToken(bg, Token{LSN: 250})); got != "primary" {
			t.Fatalf("token 250 went to %s", got)
		}
		if got := routeName(r, Primary(bg)); got != "primary" {
			t.Fatalf("Primary(ctx) went to %s", got)
		}
		if fp.polls.Load() != 0 || fp.inserts.Load() != 0 {
			t.Fatal("token routing made round trips")
		}
		st := r.Stats()
		if st.TokenPrimary != 1 || st.Fallbacks != 0 {
			t.Fatalf("stats %+v", st)
		}

		// TokenWait: the replica catches up on the third poll.
		r2, fp2 := newFake(t, Options{Interval: time.Hour, TokenWait: 100 * time.Millisecond, TokenPoll: 10 * time.Millisecond}, 1)
		defer r2.Close()
		fp2.onPoll = func(_ int, st *replicaStatus) {
			if fp2.polls.Load() >= 3 {
				st.lsn = 300
			}
		}
		start := time.Now()
		if got := routeName(r2, WithToken(bg, Token{LSN: 300})); got != "r0" {
			t.Fatalf("waiting read went to %s", got)
		}
		if d := time.Since(start); d != 20*time.Millisecond || fp2.polls.Load() != 3 {
			t.Fatalf("waited %v over %d polls, want 20ms over 3", d, fp2.polls.Load())
		}
		// Never catching up: the primary after TokenWait.
		start = time.Now()
		if got := routeName(r2, WithToken(bg, Token{LSN: 400})); got != "primary" {
			t.Fatalf("read whose token is never reached went to %s", got)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("gave up after %v, want TokenWait 100ms", d)
		}
		if st := r2.Stats(); st.TokenWaits != 1 || st.TokenPrimary != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// ConsistencyWindow sends token reads to the primary for Window after the
// write, by Options.Clock.
func TestWindowMode(t *testing.T) {
	clk := testclock.New()
	r, fp := newFake(t, Options{Consistency: ConsistencyWindow, Window: 2 * time.Second, Clock: clk}, 1)
	defer r.Close()
	tok, err := r.WriteToken(context.Background())
	if err != nil || tok.LSN != 0 || !tok.Time.Equal(clk.Now()) || fp.inserts.Load() != 0 {
		t.Fatalf("window token %+v %v (inserts %d)", tok, err, fp.inserts.Load())
	}
	ctx := WithToken(context.Background(), tok)
	clk.Add(1999 * time.Millisecond)
	if got := routeName(r, ctx); got != "primary" {
		t.Fatalf("inside the window: %s", got)
	}
	clk.Add(time.Millisecond)
	if got := routeName(r, ctx); got != "r0" {
		t.Fatalf("after the window: %s", got)
	}
	// A session's write opens a window too, with no LSN round trip.
	sctx := WithSession(context.Background(), Token{})
	r.noteWrite(sctx, nil)
	if got := routeName(r, sctx); got != "primary" {
		t.Fatalf("session read after a write: %s", got)
	}
	clk.Add(3 * time.Second)
	if got := routeName(r, sctx); got != "r0" || fp.inserts.Load() != 0 {
		t.Fatalf("session read after the window: %s (inserts %d)", got, fp.inserts.Load())
	}
}

// A session reads the primary's LSN once after any number of writes, when a
// read (or SessionToken) first needs it, and its reads then carry it.
func TestSessionReadsLSNLazily(t *testing.T) {
	r, fp := newFake(t, Options{}, 1)
	defer r.Close()
	ctx := WithSession(context.Background(), Token{LSN: 50})
	if got := routeName(r, ctx); got != "r0" || fp.inserts.Load() != 0 {
		t.Fatalf("clean session: %s, %d inserts", got, fp.inserts.Load())
	}
	fp.mu.Lock()
	fp.insert = 500
	fp.mu.Unlock()
	for range 3 {
		r.noteWrite(ctx, nil)
	}
	r.noteWrite(ctx, &pgconnError) // a SQL error: the write did not happen
	if got := routeName(r, ctx); got != "primary" {
		t.Fatalf("read after writes went to %s", got)
	}
	if got := routeName(r, ctx); got != "primary" || fp.inserts.Load() != 1 {
		t.Fatalf("second read: %s; %d inserts, want 1", got, fp.inserts.Load())
	}
	if tok, err := r.SessionToken(ctx); err != nil || tok.LSN != 500 {
		t.Fatalf("SessionToken %+v %v", tok, err)
	}
	fp.set(0, up(500))
	r.check(context.Background())
	if got := routeName(r, ctx); got != "r0" {
		t.Fatalf("read after the replica caught up went to %s", got)
	}
	// The LSN cannot be read: reads go to the primary, the error is reported.
	fp.mu.Lock()
	fp.insertErr = errDown
	fp.mu.Unlock()
	r.noteWrite(ctx, nil)
	if tok, err := r.SessionToken(ctx); err == nil || tok.LSN != unknownLSN {
		t.Fatalf("SessionToken with the primary down: %+v %v", tok, err)
	}
	if got := routeName(r, ctx); got != "primary" {
		t.Fatalf("read with an unknown LSN went to %s", got)
	}
	if tok, _ := r.SessionToken(context.Background()); !tok.IsZero() {
		t.Fatal("SessionToken without a session")
	}
}

func TestBalance(t *testing.T) {
	r, _ := newFake(t, Options{Balance: RoundRobin}, 3)
	defer r.Close()
	n := map[string]int{}
	for range 300 {
		n[routeName(r, context.Background())]++
	}
	if n["r0"] != 100 || n["r1"] != 100 || n["r2"] != 100 {
		t.Fatalf("round robin: %v", n)
	}
	l, _ := newFake(t, Options{}, 3)
	defer l.Close()
	l.replicas[0].inflight.Store(5)
	l.replicas[1].inflight.Store(1)
	l.replicas[2].inflight.Store(3)
	for range 10 {
		if got := routeName(l, context.Background()); got != "r1" {
			t.Fatalf("least in flight: %s", got)
		}
	}
	l.replicas[1].inflight.Store(5)
	l.replicas[2].inflight.Store(5)
	n = map[string]int{}
	for range 30 {
		n[routeName(l, context.Background())]++
	}
	if len(n) != 3 {
		t.Fatalf("ties should rotate: %v", n)
	}
}

// With NoFallback, reads fail with ErrNoReplica while every replica is out,
// but Primary(ctx) reads still go to the primary. Calls after Close get
// ErrClosed; Close is idempotent.
func TestNoFallbackAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, fp := newFake(t, Options{NoFallback: true, EjectAfter: 1, Interval: time.Second}, 1)
		fp.set(0, replicaStatus{err: errDown})
		time.Sleep(time.Second)
		synctest.Wait()
		ctx := context.Background()
		if _, err := r.Query(ctx, "SELECT 1"); !errors.Is(err, ErrNoReplica) {
			t.Fatalf("Query: %v", err)
		}
		if err := r.QueryRow(ctx, "SELECT 1").Scan(); !errors.Is(err, ErrNoReplica) {
			t.Fatalf("QueryRow: %v", err)
		}
		if _, err := r.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly}); !errors.Is(err, ErrNoReplica) {
			t.Fatalf("BeginTx: %v", err)
		}
		if got := routeName(r, Primary(ctx)); got != "primary" {
			t.Fatalf("Primary(ctx): %s", got)
		}
		if r.Stats().NoReplicaErrors != 3 {
			t.Fatalf("stats %+v", r.Stats())
		}
		r.Close()
		r.Close()
		if _, err := r.Query(ctx, "SELECT 1"); !errors.Is(err, ErrClosed) {
			t.Fatalf("Query after Close: %v", err)
		}
		if err := r.QueryRow(ctx, "SELECT 1").Scan(); !errors.Is(err, ErrClosed) {
			t.Fatalf("QueryRow after Close: %v", err)
		}
		if _, err := r.Exec(ctx, "SELECT 1"); !errors.Is(err, ErrClosed) {
			t.Fatalf("Exec after Close: %v", err)
		}
		if _, err := r.Begin(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("Begin after Close: %v", err)
		}
		if err := r.SendBatch(ctx, &pgx.Batch{}).Close(); !errors.Is(err, ErrClosed) {
			t.Fatalf("SendBatch after Close: %v", err)
		}
		if _, err := r.WriteToken(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("WriteToken after Close: %v", err)
		}
	})
}

// Many goroutines route reads (with and without tokens), count them in and
// out of flight, fail reads and read Stats while the monitor flips the
// replicas' health and LSNs every few milliseconds. Run with -race.
func TestHammer(t *testing.T) {
	r, fp := newFake(t, Options{Interval: 10 * time.Millisecond, EjectAfter: 1, ReadmitAfter: 1, TokenWait: time.Millisecond, TokenPoll: 100 * time.Microsecond}, 3)
	var lsn atomic.Uint64
	lsn.Store(100)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the world changes
		replayed := [3]LSN{100, 100, 100} // newFake's start; each replica's replay only grows, as on a real standby
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			l := LSN(lsn.Add(10))
			fp.setPrimary(l, nil)
			for i := range 3 {
				if rand.IntN(4) == 0 {
					fp.set(i, replicaStatus{err: errDown})
				} else {
					replayed[i] = max(replayed[i], l-LSN(rand.IntN(30)))
					fp.set(i, up(replayed[i]))
				}
			}
		}
	})
	var reads, toReplica atomic.Int64
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx := context.Background()
				var want LSN
				if i%2 == 0 {
					want = LSN(lsn.Load())
					ctx = WithToken(ctx, Token{LSN: want})
				}
				rep, err := r.route(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				reads.Add(1)
				if rep == nil {
					continue
				}
				toReplica.Add(1)
				// Replay only grows in this test: the replica must have
				// replayed the token when it was picked.
				if got := LSN(rep.replay.Load()); got < want {
					t.Errorf("token %d routed to %s at replay %d", want, rep.name, got)
				}
				rep.acquire()
				if g%4 == 0 && i%2000 == 0 {
					r.readFailed(rep, errDown)
				}
				if i%100 == 0 {
					_ = r.Stats()
				}
				rep.release()
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	r.Close()
	st := r.Stats()
	var ejections uint64
	for _, rs := range st.Replicas {
		if rs.InFlight != 0 {
			t.Fatalf("%s: %d still in flight", rs.Name, rs.InFlight)
		}
		ejections += rs.Ejections
	}
	if toReplica.Load() == 0 || toReplica.Load() == reads.Load() || ejections == 0 {
		t.Fatalf("hammer did not exercise both paths: %d reads, %d to replicas, %d ejections", reads.Load(), toReplica.Load(), ejections)
	}
	t.Logf("%d reads, %d to replicas, %d ejections", reads.Load(), toReplica.Load(), ejections)
}

func TestMiddleware(t *testing.T) {
	clk := testclock.New()
	r, fp := newFake(t, Options{Clock: clk}, 1)
	defer r.Close()
	fp.mu.Lock()
	fp.insert = 0x5000
	fp.mu.Unlock()
	if _, err := NewHTTP(HTTPOptions{}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Router") {
		t.Fatalf("no Router: %v", err)
	}
	if _, err := NewHTTP(HTTPOptions{Router: r, NoCookie: true, NoHeader: true}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NoCookie+NoHeader: %v", err)
	}
	if _, err := NewHTTP(HTTPOptions{Router: r, MaxAge: time.Millisecond}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "MaxAge") {
		t.Fatalf("MaxAge: %v", err)
	}
	hl, err := NewHTTP(HTTPOptions{Router: r})
	if err != nil {
		t.Fatal(err)
	}
	var routed string
	h := hl.Middleware(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost {
			r.noteWrite(req.Context(), nil) // as Exec does after a write
			w.WriteHeader(http.StatusCreated)
			return
		}
		routed = routeName(r, req.Context())
		w.Write([]byte("ok"))
	}))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Header().Get("X-DB-Token") != "" || rec.Header().Get("Set-Cookie") != "" || routed != "r0" {
		t.Fatalf("a read-only request got a token or went to %s: %v", routed, rec.Header())
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	tok, err := ParseToken(rec.Header().Get("X-DB-Token"))
	if err != nil || tok.LSN != 0x5000 || rec.Code != http.StatusCreated {
		t.Fatalf("write response: %d %v %v", rec.Code, rec.Header(), err)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != "dbrouter_token" || cookies[0].Value != tok.String() ||
		!cookies[0].HttpOnly || !cookies[0].Secure || cookies[0].MaxAge != 300 {
		t.Fatalf("cookie %+v", cookies)
	}

	// The next request carries it (cookie, then header): the replica at 0x100 has not replayed it.
	for _, withHeader := range []bool{false, true} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if withHeader {
			req.Header.Set("X-DB-Token", tok.String())
		} else {
			req.AddCookie(cookies[0])
		}
		routed = ""
		h.ServeHTTP(httptest.NewRecorder(), req)
		if routed != "primary" {
			t.Fatalf("read with the token (header %v) went to %s", withHeader, routed)
		}
	}
	fp.set(0, up(0x5000))
	r.check(context.Background())
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(cookies[0])
	h.ServeHTTP(httptest.NewRecorder(), req)
	if routed != "r0" {
		t.Fatalf("read after catch-up went to %s", routed)
	}
	// A malformed token is ignored.
	req = httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-DB-Token", "garbage")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if routed != "r0" {
		t.Fatalf("read with a bad token went to %s", routed)
	}
	// A handler that writes and returns without writing a body still sets it.
	h2 := hl.Middleware(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { r.noteWrite(req.Context(), nil) }))
	rec = httptest.NewRecorder()
	h2.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Header().Get("X-DB-Token") == "" {
		t.Fatal("no token after a write with no body")
	}
}

func TestTracer(t *testing.T) {
	clk := testclock.New()
	log, buf := newLog()
	tr, err := NewTracer(TracerOptions{Target: "replica-1", SlowThreshold: 100 * time.Millisecond, Clock: clk, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	run := func(ctx context.Context, d time.Duration, err error) {
		ctx = tr.TraceQueryStart(ctx, nil, pgx.TraceQueryStartData{SQL: "SELECT slow($1)", Args: []any{"secret"}})
		clk.Add(d)
		tr.TraceQueryEnd(ctx, nil, pgx.TraceQueryEndData{Err: err})
	}
	run(context.Background(), 10*time.Millisecond, nil)
	run(context.Background(), 150*time.Millisecond, nil)
	run(context.Background(), 200*time.Millisecond, errDown)
	run(context.WithValue(context.Background(), untracedKey{}, true), time.Second, nil) // the router's own check
	st := tr.Stats()
	if st != (TracerStats{Target: "replica-1", Queries: 3, Errors: 1, Slow: 2, Duration: 360 * time.Millisecond}) {
		t.Fatalf("stats %+v", st)
	}
	out := buf.String()
	if strings.Count(out, "slow query") != 2 || !strings.Contains(out, "target=replica-1") || strings.Contains(out, "secret") ||
		!strings.Contains(out, "SELECT slow($1)") || !strings.Contains(out, "connection refused") {
		t.Fatalf("log:\n%s", out)
	}
	if (*Tracer)(nil).Stats() != (TracerStats{}) {
		t.Fatal("nil tracer stats")
	}
}

// ShareSession hands one ctx's session to another, keeping what the other
// says: a write through either advances the one token; Primary on the
// receiving ctx still sends its reads to the primary.
func TestShareSession(t *testing.T) {
	r, fp := newFake(t, Options{}, 1)
	defer r.Close()
	bg := context.Background()
	if ShareSession(bg, bg) != bg {
		t.Fatal("ShareSession from a ctx without a session changed ctx")
	}
	from := WithSession(bg, Token{LSN: 50})
	type k struct{}
	ctx := ShareSession(context.WithValue(bg, k{}, "v"), from)
	if ctx.Value(k{}) != "v" {
		t.Fatal("ShareSession lost ctx's values")
	}
	fp.mu.Lock()
	fp.insert = 500
	fp.mu.Unlock()
	r.noteWrite(ctx, nil) // a write on the receiving ctx...
	if tok, err := r.SessionToken(from); err != nil || tok.LSN != 500 {
		t.Fatalf("...advances the sharing ctx's token: %+v %v", tok, err)
	}
	fp.set(0, up(500))
	r.check(bg)
	if got := routeName(r, ctx); got != "r0" {
		t.Fatalf("read after the replica caught up went to %s", got)
	}
	if got := routeName(r, ShareSession(Primary(bg), from)); got != "primary" {
		t.Fatalf("ShareSession dropped Primary: read went to %s", got)
	}
}
