package shardstats

import "time"

// StoreStats is a snapshot of a shard.MapStore's counters: its watch of
// the stored map, the writes its Do ran again after a fence refused them,
// and the moves of the Movers on it.
type StoreStats struct {
	// Notifications received, polls made for want of one, and reconnects
	// of Watch's LISTEN connection.
	Notifications, Polls, Reconnects int64
	// Retried counts writes Do ran again on a virtual shard's new cluster
	// after its old cluster's fence refused them.
	Retried int64
	// Moves counts the moves Movers on the store finished; LastFence is
	// how long the last one fenced writes (0 before any, or when it was
	// resumed after its flip).
	Moves     int64
	LastFence time.Duration
}
