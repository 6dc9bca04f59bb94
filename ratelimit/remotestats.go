package ratelimit

import "github.com/scalekit-go/scalekit/breaker"

// RemoteStats is a snapshot of the counters of a limiter that decides on a
// server (ratelimitredis.Limiter): decisions the server made, and those
// made without it while it was down, slow or behind an open circuit. It is
// defined here so collectors (package metrics) read it without compiling
// the server's client.
type RemoteStats struct {
	// Allowed and Denied count decisions Redis made.
	Allowed, Denied uint64
	// RoundTrips counts the calls sent to the server to decide (failed
	// ones included, those the open circuit skipped not): one per AllowN
	// without coalescing, one per coalesced batch, AllowMany or lease (a
	// Cluster sends a batch as one pipeline per node, counted once).
	RoundTrips uint64
	// Batches counts the round trips that carried a batch (coalesced calls
	// or an AllowMany), Batched the decisions they carried:
	// Batched/Batches is the mean batch size. A coalesced call that went
	// alone (nothing else was waiting) is not a batch.
	Batches, Batched uint64
	// Leases counts the leases asked for (round trips of the lease mode,
	// also in RoundTrips), Leased the events they took, LeaseSpent the events
	// spent from them (the first of each lease included) and LeaseExpired
	// those that went unspent (LeaseTTL passed, or the lease was too small
	// for a call). Leased - LeaseSpent - LeaseExpired are in hand.
	Leases, Leased, LeaseSpent, LeaseExpired uint64
	// Errors counts failed round trips; Skipped the decisions the open
	// circuit kept away from Redis.
	Errors, Skipped uint64
	// FailOpen and FailClosed count decisions made by the failure mode,
	// Fallbacks those handed to Options.Fallback.
	FailOpen, FailClosed, Fallbacks uint64
	// Circuit is the breaker's state.
	Circuit breaker.State
}

// RemoteConcurrencyStats is a snapshot of the counters of a concurrency
// limiter whose slots are leases on a server (ratelimitredis.Concurrency).
type RemoteConcurrencyStats struct {
	// Acquired, Rejected and Released count decisions Redis made and
	// releases.
	Acquired, Rejected, Released uint64
	// Renewals counts lease renewals; Lost the leases found gone when
	// renewing (Redis lost them, or the holder stalled past Lease).
	Renewals, Lost uint64
	// Errors, Skipped, FailOpen, FailClosed and Fallbacks are as in RemoteStats.
	Errors, Skipped, FailOpen, FailClosed, Fallbacks uint64
	// Held is how many leases this process holds now.
	Held int
	// Circuit is the breaker's state.
	Circuit breaker.State
}
