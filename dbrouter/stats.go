package dbrouter

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
)

// Stats is a snapshot of a Router's state and counters; the types live in
// routerstats so collectors read them without compiling pgx.
type (
	Stats        = routerstats.Stats
	PrimaryStats = routerstats.PrimaryStats
	ReplicaStats = routerstats.ReplicaStats
	PoolStats    = routerstats.PoolStats
)

// poolStats reads p's pgxpool.Stat; zero for a router without pools.
func poolStats(p *pgxpool.Pool) PoolStats {
	if p == nil {
		return PoolStats{}
	}
	st := p.Stat()
	return PoolStats{MaxConns: st.MaxConns(), TotalConns: st.TotalConns(), AcquiredConns: st.AcquiredConns(),
		IdleConns: st.IdleConns(), ConstructingConns: st.ConstructingConns(),
		Acquires: st.AcquireCount(), AcquireDuration: st.AcquireDuration(),
		EmptyAcquires: st.EmptyAcquireCount(), EmptyAcquireWait: st.EmptyAcquireWaitTime(),
		CanceledAcquires: st.CanceledAcquireCount(), NewConns: st.NewConnsCount(),
		MaxLifetimeDestroys: st.MaxLifetimeDestroyCount(), MaxIdleDestroys: st.MaxIdleDestroyCount()}
}

// Stats returns a snapshot.
func (r *Router) Stats() Stats {
	s := Stats{
		Fallbacks:       r.fallbacks.Load(),
		TokenPrimary:    r.tokenPrimary.Load(),
		TokenWaits:      r.tokenWaits.Load(),
		ReplicaRetries:  r.replicaRetries.Load(),
		ReadOnlyRetries: r.readOnlyRetries.Load(),
		NoReplicaErrors: r.noReplica.Load(),
		ForgedTokens:    r.forged.Load(),
		Failovers:       r.failovers.Load(),
		LostTokens:      r.lostTokens.Load(),
		SplitBrains:     r.splitBrain.Load(),
	}
	w := r.w()
	r.mu.Lock()
	defer r.mu.Unlock()
	s.Primary = PrimaryStats{Server: w.name, Timeline: r.timelines().cur, Up: r.ps.up, LSN: r.ps.lsn, Reads: r.primaryReads.Load(), Writes: r.primaryWrites.Load(),
		Checks: r.ps.checks, CheckFailures: r.ps.failures, LastCheck: r.ps.lastCheck, LastError: r.ps.lastErr,
		Queries: w.tracer.Stats(), Pool: poolStats(w.pool)}
	for _, rep := range r.replicas {
		s.Replicas = append(s.Replicas, ReplicaStats{
			Name: rep.name, Healthy: rep.healthy, Reason: rep.reason, ReplayLSN: LSN(rep.replay.Load()),
			LagBytes: rep.lag, LagKnown: rep.lagKnown, InFlight: rep.inflight.Load(),
			Reads: rep.reads.Load(), FailedReads: rep.failedReads,
			Ejections: rep.ejections, Readmissions: rep.readmissions,
			Checks: rep.checks, CheckFailures: rep.checkF, LastCheck: rep.lastCheck, LastError: rep.lastErr,
			Queries: rep.tracer.Stats(), ReplayRegressions: rep.regressions, Pool: poolStats(rep.pool),
		})
	}
	return s
}
