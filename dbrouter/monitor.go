package dbrouter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/scalekit-go/scalekit/clock"
)

// replicaStatus is one reading of a server (the primary or a replica).
type replicaStatus struct {
	lsn        LSN // pg_last_wal_replay_lsn(); 0 when NULL
	inRecovery bool
	readOnly   bool   // transaction_read_only is on (always, on a standby)
	write      LSN    // pg_current_wal_lsn(); 0 in recovery
	insert     LSN    // pg_current_wal_insert_lsn(); 0 in recovery
	tli        uint32 // timeline: of the insert position, or received (standby); 0 unknown
	err        error
}

// prober reads WAL positions and roles. The monitor calls primaryStatus, check
// and history from one goroutine per server at a time; poll and insertLSN
// run on callers' goroutines. Server w is the primary for 0, replica w-1
// otherwise.
type prober interface {
	// primaryStatus reads Options.Primary for the monitor.
	primaryStatus(ctx context.Context) replicaStatus
	// check reads replica i for the monitor.
	check(ctx context.Context, i int) replicaStatus
	// poll reads replica i for a read waiting on a token.
	poll(ctx context.Context, i int) replicaStatus
	// insertLSN is server w's pg_current_wal_insert_lsn() and timeline.
	insertLSN(ctx context.Context, w int) (LSN, uint32, error)
	// history reads server w's history file of timeline tli: where each
	// earlier timeline of its history ended.
	history(ctx context.Context, w int, tli uint32) (map[uint32]LSN, error)
	// close releases the monitor's connections.
	close()
}

// sqlTimeline is a primary's timeline: that of its WAL insert position,
// the first 8 hex digits of its WAL file name. Not pg_control_checkpoint()'s
// timeline_id: that is the last checkpoint's, the old timeline until the
// checkpoint a promotion requests has finished.
const sqlTimeline = "('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::bigint"

const (
	// sqlServer reads any server's role and positions. On a standby the
	// timeline is the one its WAL receiver streams (NULL, so 0, without
	// pg_read_all_stats or while it is not streaming).
	sqlServer = `SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on',
		CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
		CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END,
		pg_last_wal_replay_lsn()::text,
		CASE WHEN pg_is_in_recovery() THEN COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), 0)::bigint
		ELSE ` + sqlTimeline + ` END`
	sqlInsertLSN = "SELECT pg_current_wal_insert_lsn()::text, " + sqlTimeline
	sqlReplica   = "SELECT pg_last_wal_replay_lsn()::text, pg_is_in_recovery()"
	sqlHistory   = "SELECT pg_read_file('pg_wal/' || lpad(upper(to_hex($1::bigint)), 8, '0') || '.history')"
)

// untracedKey marks the router's own queries, which Tracer does not count.
type untracedKey struct{}

// poolProber checks each server on a connection of its own, so a replica
// whose pool is saturated by slow reads is not taken for a dead one; polls
// and write tokens use the pools.
type poolProber struct {
	pools []*pgxpool.Pool // [0] primary, [1+i] replica i
	mon   []*monConn      // likewise
}

func newPoolProber(primary *pgxpool.Pool, replicas []*pgxpool.Pool) *poolProber {
	p := &poolProber{pools: append([]*pgxpool.Pool{primary}, replicas...)}
	for _, pool := range p.pools {
		p.mon = append(p.mon, &monConn{cfg: pool.Config().ConnConfig})
	}
	return p
}

func (p *poolProber) server(ctx context.Context, w int) replicaStatus {
	var st replicaStatus
	var write, insert, replay *string
	var tli int64
	if st.err = p.mon[w].queryRow(ctx, sqlServer, nil, &st.inRecovery, &st.readOnly, &write, &insert, &replay, &tli); st.err != nil {
		return st
	}
	st.tli = uint32(tli)
	for _, f := range []struct {
		s *string
		l *LSN
	}{{write, &st.write}, {insert, &st.insert}, {replay, &st.lsn}} {
		if f.s != nil && st.err == nil {
			*f.l, st.err = ParseLSN(*f.s)
		}
	}
	return st
}

func (p *poolProber) primaryStatus(ctx context.Context) replicaStatus { return p.server(ctx, 0) }

func (p *poolProber) check(ctx context.Context, i int) replicaStatus { return p.server(ctx, 1+i) }

func (p *poolProber) poll(ctx context.Context, i int) replicaStatus {
	var s *string
	var st replicaStatus
	ctx = context.WithValue(ctx, untracedKey{}, true)
	if st.err = p.pools[1+i].QueryRow(ctx, sqlReplica).Scan(&s, &st.inRecovery); st.err == nil && s != nil {
		st.lsn, st.err = ParseLSN(*s)
	}
	return st
}

func (p *poolProber) insertLSN(ctx context.Context, w int) (LSN, uint32, error) {
	var s string
	var tli int64
	if err := p.pools[w].QueryRow(ctx, sqlInsertLSN).Scan(&s, &tli); err != nil {
		return 0, 0, err
	}
	l, err := ParseLSN(s)
	return l, uint32(tli), err
}

func (p *poolProber) history(ctx context.Context, w int, tli uint32) (map[uint32]LSN, error) {
	var text string
	if err := p.mon[w].queryRow(ctx, sqlHistory, []any{int64(tli)}, &text); err != nil {
		return nil, err
	}
	return parseHistory(text)
}

// parseHistory parses a timeline history file: a line per earlier
// timeline, "parent-timeline<TAB>switch-LSN<TAB>reason", where the switch
// LSN is where that timeline ended and the next began.
func parseHistory(text string) (map[uint32]LSN, error) {
	ends := map[uint32]LSN{}
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("dbrouter: timeline history line %q has no switch point", strings.TrimSpace(line))
		}
		t, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("dbrouter: timeline history line %q: bad timeline", strings.TrimSpace(line))
		}
		l, err := ParseLSN(f[1])
		if err != nil {
			return nil, fmt.Errorf("dbrouter: timeline history line %q: %w", strings.TrimSpace(line), err)
		}
		ends[uint32(t)] = l
	}
	return ends, nil
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

func (m *monConn) queryRow(ctx context.Context, sql string, args []any, dest ...any) error {
	ctx = context.WithValue(ctx, untracedKey{}, true)
	if m.conn == nil || m.conn.IsClosed() {
		m.close()
		c, err := pgx.ConnectConfig(ctx, m.cfg)
		if err != nil {
			return err
		}
		m.conn = c
	}
	err := m.conn.QueryRow(ctx, sql, args...).Scan(dest...)
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
	// A failed write (Options.Failover) asks for a check now, but checks
	// run at most every gap.
	gap := max(r.o.Interval/4, 10*time.Millisecond)
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kicks:
			if d := time.Since(last); d < gap {
				t.Reset(gap - d)
				continue
			}
		}
		r.check(ctx)
		last = time.Now()
		t.Reset(r.o.Interval)
	}
}

// check reads every server at once, then applies the readings.
func (r *Router) check(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, r.o.CheckTimeout)
	defer cancel()
	var wg sync.WaitGroup
	sts := make([]replicaStatus, 1+len(r.replicas)) // [0] primary, [1+i] replica i
	wg.Go(func() { sts[0] = r.probe.primaryStatus(cctx) })
	for i := range r.replicas {
		wg.Go(func() { sts[1+i] = r.probe.check(cctx, i) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // closing, or New's ctx ended: no verdict
	}
	evs, switched := r.failover(cctx, sts)
	w := r.w()
	ws := sts[w.idx]
	perr := ws.err
	switch {
	case perr != nil:
	case ws.inRecovery:
		perr = errors.New("in recovery (a standby): it takes no writes")
	case ws.readOnly:
		perr = errors.New("transaction_read_only is on: it takes no writes")
	}
	plsn, pins := ws.write, ws.insert
	tl := r.timelines()
	now := clock.Now(r.o.Clock)

	r.mu.Lock()
	ps := &r.ps
	ps.checks++
	ps.lastCheck = now
	if perr != nil {
		ps.failures++
		ps.lastErr = perr.Error()
		if ps.up || ps.checks == 1 || switched {
			evs = append(evs, event{level: slog.LevelWarn, msg: "dbrouter: primary check failed: writes fail, reads stay on healthy replicas", args: []any{"primary", w.name, "err", perr}})
		}
		ps.up = false
	} else {
		if !ps.up && ps.checks > 1 && !switched {
			evs = append(evs, event{level: slog.LevelInfo, msg: "dbrouter: primary is back", args: []any{"primary", w.name, "lsn", plsn.String()}})
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
		st := sts[1+i]
		rep.checks++
		rep.lastCheck = now
		rep.reachable = st.err == nil && st.inRecovery
		var bad string
		switch {
		case w.idx == 1+i:
			bad = "the primary now: promoted, it takes the writes (Options.Failover)"
			if st.err != nil {
				rep.checkF++
				rep.lastErr = st.err.Error()
			}
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
			bad = timelineBad(st, tl)
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
		if w.idx == 1+i && rep.healthy {
			// The write server takes no replica reads: out at once.
			rep.bad = r.o.EjectAfter
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

// timelineBad says why a replica read as st cannot take reads given the
// write server's timelines tl, "" when it can: a replica on an earlier
// timeline that replayed past that timeline's switch point followed the
// old primary after the fork (it has writes the new primary lost, and
// will never stream from it without pg_rewind); one on a later timeline
// than the write server follows a primary the router does not write to.
// Unknown timelines (0) are not judged.
func timelineBad(st replicaStatus, tl *timelines) string {
	switch {
	case st.tli == 0 || tl.cur == 0 || st.tli == tl.cur:
		return ""
	case st.tli > tl.cur:
		return fmt.Sprintf("on timeline %d, later than the primary's %d: it follows a server the router does not write to", st.tli, tl.cur)
	}
	end, ok := tl.ends[st.tli]
	switch {
	case !ok:
		return fmt.Sprintf("on timeline %d, whose switch point in the primary's timeline %d history is unknown", st.tli, tl.cur)
	case st.lsn > end:
		return fmt.Sprintf("diverged: replayed %s on timeline %d, past its switch point %s to the primary's timeline %d (rebuild it with pg_rewind)", st.lsn, st.tli, end, tl.cur)
	}
	return ""
}

// timelines is the write server's timeline and where each earlier
// timeline of its history ended (its switch point). Replaced, never
// mutated (but for warned).
type timelines struct {
	cur    uint32
	ends   map[uint32]LSN
	warned atomic.Bool // a lost token has been logged at Warn
}

// failover decides from one check's readings (sts[0] the primary, sts[1+i]
// replica i) where writes go, and keeps the write server's timeline
// history. It runs on the monitor's goroutine, the only one that changes
// r.wr and r.tl, and returns the events to log and whether the write
// server changed.
//
// With Options.Failover a server is a candidate when it answers, is not in
// recovery and is not read-only, and is not on a timeline earlier than the
// write server's (an old primary restarted without being demoted: its
// writes since the fork are not in the new primary's history). Of several
// candidates (a split brain) the one on the latest timeline wins, as a
// promotion always starts a new one; of candidates on the same timeline
// the current write server stays, else the first in configuration order.
// Every check that sees more than one server claiming to be primary is
// counted, and the first of a run is logged at Error.
func (r *Router) failover(ctx context.Context, sts []replicaStatus) ([]event, bool) {
	var evs []event
	cur := r.w()
	tl := r.timelines()
	pick := cur.idx
	if r.o.Failover {
		var cands, stale []int
		for s, st := range sts {
			switch {
			case st.err != nil || st.inRecovery || st.readOnly:
			case tl.cur != 0 && st.tli != 0 && st.tli < tl.cur:
				stale = append(stale, s)
			default:
				cands = append(cands, s)
			}
		}
		if len(cands) > 0 && !slices.Contains(cands, cur.idx) {
			pick = cands[0]
		}
		for _, s := range cands {
			if sts[s].tli > sts[pick].tli {
				pick = s
			}
		}
		split := len(cands)+len(stale) > 1
		if split {
			r.splitBrain.Add(1)
			if !r.mon.split {
				var claims []any
				for _, s := range append(cands, stale...) {
					claims = append(claims, r.serverName(s), fmt.Sprintf("timeline %d", sts[s].tli))
				}
				evs = append(evs, event{level: slog.LevelError, msg: "dbrouter: split brain: more than one server claims to be the primary; writes go only to the one on the latest timeline, never to an old primary back without being demoted (fence or demote it)",
					args: append([]any{"writes_to", r.serverName(pick)}, claims...)})
			}
		}
		r.mon.split = split
	}
	switched := pick != cur.idx
	if switched {
		from := cur
		cur = r.writerFor(pick)
		r.wr.Store(cur)
		r.failovers.Add(1)
		why := "unreachable"
		switch fs := sts[from.idx]; {
		case fs.err == nil && fs.inRecovery:
			why = "in recovery (a standby)"
		case fs.err == nil && fs.readOnly:
			why = "read-only"
		case fs.err == nil:
			why = "on an earlier timeline"
		}
		evs = append(evs, event{level: slog.LevelWarn, msg: "dbrouter: failover: writes now go to the promoted server",
			args: []any{"primary", cur.name, "timeline", sts[pick].tli, "old_primary", from.name, "old_primary_state", why}})
	}
	if ev, ok := r.followTimeline(ctx, cur, sts[cur.idx], tl); ok {
		evs = append(evs, ev)
	}
	for s, st := range sts {
		if st.err == nil {
			r.mon.standby[s] = st.inRecovery
		}
	}
	return evs, switched
}

// followTimeline records the write server's timeline when it changed,
// with the switch points of the earlier ones: from its timeline history
// file (pg_read_file, which needs superuser, pg_read_server_files or an
// explicit grant), else, when the router saw the server in recovery at
// its previous check (it watched the promotion), its
// pg_last_wal_replay_lsn(), which stays at the last record replayed
// before the promotion: where the new timeline forked. Otherwise the
// earlier timelines' switch points stay unknown and their tokens go to the
// primary.
func (r *Router) followTimeline(ctx context.Context, w *writer, st replicaStatus, tl *timelines) (event, bool) {
	if st.err != nil || st.inRecovery || st.tli == 0 || st.tli == tl.cur {
		return event{}, false
	}
	ntl := &timelines{cur: st.tli, ends: maps.Clone(tl.ends)}
	if ntl.ends == nil {
		ntl.ends = map[uint32]LSN{}
	}
	source := "none"
	if st.tli > 1 {
		h, err := r.probe.history(ctx, w.idx, st.tli)
		switch {
		case err == nil:
			maps.Copy(ntl.ends, h)
			source = "history file"
		case tl.cur != 0 && st.tli == tl.cur+1 && r.mon.standby[w.idx] && st.lsn != 0:
			ntl.ends[tl.cur] = st.lsn
			source = "last replayed LSN at promotion"
		default:
			source = "unknown (" + err.Error() + "): tokens of earlier timelines go to the primary"
		}
	}
	r.tl.Store(ntl)
	if tl.cur == 0 && st.tli == 1 {
		return event{}, false
	}
	var ends []any
	for _, t := range slices.Sorted(maps.Keys(ntl.ends)) {
		ends = append(ends, fmt.Sprintf("timeline_%d_end", t), ntl.ends[t].String())
	}
	return event{level: slog.LevelInfo, msg: "dbrouter: write server's timeline",
		args: append([]any{"primary", w.name, "timeline", st.tli, "was", tl.cur, "switch_points_from", source}, ends...)}, true
}

// writerFor is the write target for server s.
func (r *Router) writerFor(s int) *writer {
	if s == 0 {
		return &writer{name: "primary", pool: r.primary, tracer: r.pTracer}
	}
	rep := r.replicas[s-1]
	return &writer{idx: s, name: rep.name, pool: rep.pool, tracer: rep.tracer}
}

// serverName names server s in logs.
func (r *Router) serverName(s int) string { return r.writerFor(s).name }

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
