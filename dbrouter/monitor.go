package dbrouter

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/scalekit-go/scalekit/clock"
)

// replicaStatus is one reading of a replica.
type replicaStatus struct {
	lsn        LSN // pg_last_wal_replay_lsn(); 0 when NULL
	inRecovery bool
	err        error
}

// prober reads WAL positions. The monitor calls primaryLSN and check from
// one goroutine per server at a time; poll and insertLSN run on callers'
// goroutines.
type prober interface {
	// primaryLSN is the primary's pg_current_wal_lsn() and
	// pg_current_wal_insert_lsn().
	primaryLSN(ctx context.Context) (write, insert LSN, err error)
	// check reads replica i for the monitor.
	check(ctx context.Context, i int) replicaStatus
	// poll reads replica i for a read waiting on a token.
	poll(ctx context.Context, i int) replicaStatus
	// insertLSN is the primary's pg_current_wal_insert_lsn().
	insertLSN(ctx context.Context) (LSN, error)
	// close releases the monitor's connections.
	close()
}

const (
	sqlPrimaryLSN = "SELECT pg_current_wal_lsn()::text, pg_current_wal_insert_lsn()::text"
	sqlInsertLSN  = "SELECT pg_current_wal_insert_lsn()::text"
	sqlReplica    = "SELECT pg_last_wal_replay_lsn()::text, pg_is_in_recovery()"
)

// untracedKey marks the router's own queries, which Tracer does not count.
type untracedKey struct{}

// poolProber checks each server on a connection of its own, so a replica
// whose pool is saturated by slow reads is not taken for a dead one; polls
// and write tokens use the pools.
type poolProber struct {
	primary  *pgxpool.Pool
	replicas []*pgxpool.Pool
	mon      []*monConn // [0] primary, [1+i] replica i
}

func newPoolProber(primary *pgxpool.Pool, replicas []*pgxpool.Pool) *poolProber {
	p := &poolProber{primary: primary, replicas: replicas}
	for _, pool := range append([]*pgxpool.Pool{primary}, replicas...) {
		p.mon = append(p.mon, &monConn{cfg: pool.Config().ConnConfig})
	}
	return p
}

func (p *poolProber) primaryLSN(ctx context.Context) (write, insert LSN, err error) {
	var w, i string
	if err := p.mon[0].queryRow(ctx, sqlPrimaryLSN, &w, &i); err != nil {
		return 0, 0, err
	}
	if write, err = ParseLSN(w); err != nil {
		return 0, 0, err
	}
	insert, err = ParseLSN(i)
	return write, insert, err
}

func (p *poolProber) check(ctx context.Context, i int) replicaStatus {
	var s *string
	var st replicaStatus
	if st.err = p.mon[1+i].queryRow(ctx, sqlReplica, &s, &st.inRecovery); st.err == nil && s != nil {
		st.lsn, st.err = ParseLSN(*s)
	}
	return st
}

func (p *poolProber) poll(ctx context.Context, i int) replicaStatus {
	var s *string
	var st replicaStatus
	ctx = context.WithValue(ctx, untracedKey{}, true)
	if st.err = p.replicas[i].QueryRow(ctx, sqlReplica).Scan(&s, &st.inRecovery); st.err == nil && s != nil {
		st.lsn, st.err = ParseLSN(*s)
	}
	return st
}

func (p *poolProber) insertLSN(ctx context.Context) (LSN, error) {
	var s string
	if err := p.primary.QueryRow(ctx, sqlInsertLSN).Scan(&s); err != nil {
		return 0, err
	}
	return ParseLSN(s)
}

func (p *poolProber) close() {
	for _, m := range p.mon {
		m.close()
	}
}

// monConn is the monitor's connection to one server, made again after it
// breaks. Only the monitor goroutine (one check per server at a time) uses
// it.
type monConn struct {
	cfg  *pgx.ConnConfig
	conn *pgx.Conn
}

func (m *monConn) queryRow(ctx context.Context, sql string, dest ...any) error {
	ctx = context.WithValue(ctx, untracedKey{}, true)
	if m.conn == nil || m.conn.IsClosed() {
		m.close()
		c, err := pgx.ConnectConfig(ctx, m.cfg)
		if err != nil {
			return err
		}
		m.conn = c
	}
	err := m.conn.QueryRow(ctx, sql).Scan(dest...)
	if err != nil && !isPgError(err) {
		m.close() // a timeout or a broken connection: start afresh
	}
	return err
}

func (m *monConn) close() {
	if m.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		m.conn.Close(ctx)
		cancel()
		m.conn = nil
	}
}

// primaryState is the monitor's view of the primary, under Router.mu.
type primaryState struct {
	up        bool
	lsn       LSN
	lastErr   string
	lastCheck time.Time
	checks    uint64
	failures  uint64
}

// event is a log line decided under Router.mu and written after it, with
// a pool to reset.
type event struct {
	level slog.Level
	msg   string
	args  []any
	reset *pgxpool.Pool
}

func (r *Router) emit(evs []event) {
	for _, e := range evs {
		if e.reset != nil {
			e.reset.Reset()
		}
		r.o.Logger.Log(context.Background(), e.level, e.msg, e.args...)
	}
}

// start runs the first check (bounded by ctx) and starts the monitor.
func (r *Router) start(ctx context.Context) {
	r.check(ctx)
	r.awaitFloor(ctx)
	mctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go r.run(mctx)
}

// awaitFloor gives the replicas that answered New's check but had not yet
// replayed the floor (the primary's position at that check, read at the same
// moment) up to CheckTimeout to reach it, re-reading only those, so a
// caught-up replica takes reads as soon as New returns rather than after
// the next check.
func (r *Router) awaitFloor(ctx context.Context) {
	floor := LSN(r.floor.Load())
	if floor == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.CheckTimeout)
	defer cancel()
	t := time.NewTimer(r.o.TokenPoll)
	defer t.Stop()
	for {
		var behind []*replica
		r.mu.Lock()
		for _, rep := range r.replicas {
			if rep.reachable && LSN(rep.replay.Load()) < floor {
				behind = append(behind, rep)
			}
		}
		r.mu.Unlock()
		if len(behind) == 0 {
			return
		}
		for _, rep := range behind {
			if st := r.probe.check(ctx, rep.idx); st.err == nil && st.inRecovery {
				rep.raiseReplay(st.lsn)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			t.Reset(r.o.TokenPoll)
		}
	}
}

func (r *Router) run(ctx context.Context) {
	defer close(r.done)
	defer r.probe.close()
	t := time.NewTimer(r.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.check(ctx)
		t.Reset(r.o.Interval)
	}
}

// check reads every server at once, then applies the readings.
func (r *Router) check(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, r.o.CheckTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var plsn, pins LSN
	var perr error
	wg.Go(func() { plsn, pins, perr = r.probe.primaryLSN(cctx) })
	sts := make([]replicaStatus, len(r.replicas))
	for i := range r.replicas {
		wg.Go(func() { sts[i] = r.probe.check(cctx, i) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // closing, or New's ctx ended: no verdict
	}
	now := clock.Now(r.o.Clock)
	var evs []event

	r.mu.Lock()
	ps := &r.ps
	ps.checks++
	ps.lastCheck = now
	if perr != nil {
		ps.failures++
		ps.lastErr = perr.Error()
		if ps.up || ps.checks == 1 {
			evs = append(evs, event{level: slog.LevelWarn, msg: "dbrouter: primary check failed: writes fail, reads stay on healthy replicas", args: []any{"err", perr}})
		}
		ps.up = false
	} else {
		if !ps.up && ps.checks > 1 {
			evs = append(evs, event{level: slog.LevelInfo, msg: "dbrouter: primary is back", args: []any{"lsn", plsn.String()}})
		}
		ps.up, ps.lsn, ps.lastErr = true, plsn, ""
		r.raiseKnown(max(plsn, pins))
		if r.floor.Load() == 0 {
			// The router's start: no replica takes reads before it has
			// replayed what the primary had written by now.
			r.floor.Store(uint64(pageStart(pins)))
		}
	}
	changed := false
	for i, rep := range r.replicas {
		st := sts[i]
		rep.checks++
		rep.lastCheck = now
		rep.reachable = st.err == nil && st.inRecovery
		var bad string
		switch {
		case st.err != nil:
			rep.checkF++
			rep.lastErr = st.err.Error()
			bad = "check failed: " + rep.lastErr
			rep.checkLSN.Store(0) // a restarted server may replay from an earlier point
		case !st.inRecovery:
			bad = "not in recovery: promoted, or not a replica"
		case st.lsn == 0:
			bad = "no WAL replayed yet"
		default:
			base := LSN(rep.checkLSN.Load())
			ev, back := r.replayReading(rep, base, st.lsn)
			if back {
				evs = append(evs, ev)
			}
			if base == 0 || st.lsn < base {
				// First reading since a failure (a restarted server may
				// replay from an earlier point), or several servers: take it
				// as it is.
				rep.replay.Store(uint64(st.lsn))
			} else {
				// A poll that ran after this check's query may have seen more.
				rep.raiseReplay(st.lsn)
			}
			rep.checkLSN.Store(uint64(st.lsn))
			rep.lastErr = ""
		}
		rep.lagKnown = false
		if bad == "" && perr == nil {
			lag := int64(0)
			if plsn > st.lsn {
				lag = int64(plsn - st.lsn)
			}
			rep.lag, rep.lagKnown = lag, true
			limit, name := r.o.MaxLagBytes, "MaxLagBytes"
			if !rep.healthy && rep.seen {
				limit, name = r.o.ReadmitLagBytes, "ReadmitLagBytes"
			}
			if lag > limit {
				bad = fmt.Sprintf("lag %d bytes > %s %d", lag, name, limit)
			}
		}
		if ev, ch := r.observe(rep, bad, st.err != nil); ch {
			changed = true
			evs = append(evs, ev)
		}
	}
	if changed {
		r.rebuild()
	}
	r.mu.Unlock()
	r.emit(evs)
}

// observe counts one good (bad == "") or bad observation of rep and moves it
// in or out of the healthy set; failure says the bad one is a failure to
// reach the server (not lag). r.mu is held.
func (r *Router) observe(rep *replica, bad string, failure bool) (event, bool) {
	if bad == "" {
		rep.bad = 0
		rep.reason = ""
		if rep.healthy {
			return event{}, false
		}
		rep.good++
		if rep.seen && rep.good < r.o.ReadmitAfter {
			return event{}, false
		}
		rep.healthy, rep.good = true, 0
		ev := event{level: slog.LevelInfo, msg: "dbrouter: replica joined", args: []any{"replica", rep.name, "replay_lsn", LSN(rep.replay.Load()).String()}}
		if rep.seen {
			rep.readmissions++
			ev.msg = "dbrouter: replica readmitted"
		}
		if rep.failedOut {
			// Connections from before the outage are likely broken: drop
			// them rather than fail (and retry) the first reads on them.
			ev.reset, rep.failedOut = rep.pool, false
		}
		rep.seen = true
		return ev, true
	}
	rep.good = 0
	rep.reason = bad
	if !rep.healthy {
		return event{}, false
	}
	rep.bad++
	if rep.bad < r.o.EjectAfter {
		return event{}, false
	}
	rep.healthy, rep.bad = false, 0
	rep.ejections++
	rep.failedOut = failure
	return event{level: slog.LevelWarn, msg: "dbrouter: replica ejected", args: []any{"replica", rep.name, "reason", bad}}, true
}

// readFailed counts a replica read that failed for want of the server as a
// bad observation.
func (r *Router) readFailed(rep *replica, err error) {
	r.mu.Lock()
	rep.failedReads++
	rep.lastErr = err.Error()
	ev, changed := r.observe(rep, "read failed: "+rep.lastErr, true)
	if changed {
		r.rebuild()
	}
	r.mu.Unlock()
	if changed {
		r.emit([]event{ev})
	}
}

// rebuild publishes the healthy set; r.mu is held.
func (r *Router) rebuild() {
	hs := make([]*replica, 0, len(r.replicas))
	for _, rep := range r.replicas {
		if rep.healthy {
			hs = append(hs, rep)
		}
	}
	r.healthy.Store(&hs)
}

// replayReading compares a replica's replay LSN l with base, a reading
// whose query ended before l's began (the previous check; for a poll, the
// check applied before it started), 0 when there is none since the last
// failure. Replay on one server never goes back, so a lower reading means
// the "replica" is several servers (a load balancer, PgBouncer or a cloud
// reader endpoint over standbys) whose replay positions say nothing about
// the server a read lands on. The replica is then unsafe for token reads
// for the router's life, the first time is logged (returned as an event),
// and each time is counted. r.mu is held.
func (r *Router) replayReading(rep *replica, base, l LSN) (event, bool) {
	if base == 0 || l >= base {
		return event{}, false
	}
	rep.regressions++
	if rep.unsafe.Swap(true) {
		return event{}, false
	}
	return event{level: slog.LevelWarn, msg: "dbrouter: replica's replay LSN went backwards: the replica URL reaches more than one server (a load balancer, PgBouncer, a reader endpoint?); its LSN cannot bound reads, so reads carrying a token no longer go to it",
		args: []any{"replica", rep.name, "before", base.String(), "now", l.String()}}, true
}

// pageStart maps an insert position just past a WAL page header (nothing
// inserted on the page yet) to the page's start, where the last record
// ended and where a replica's replay stops: else an idle replica could not
// reach the floor until more WAL is written. A record cannot end 24 or 40
// bytes into a page (the page header alone takes that, and a record is at
// least 24 bytes), so only an empty page maps back.
func pageStart(l LSN) LSN {
	const page = 8192
	if off := l % page; off == 24 || off == 40 {
		return l - off
	}
	return l
}
