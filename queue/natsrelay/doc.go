// Package natsrelay forwards a topic's events from a scalekit queue to
// NATS JetStream, for consumers outside the service: at least once, in
// order per key, each event published with its event id as Nats-Msg-Id.
//
//	jobs.Subscribe(ctx, "orders", "orders-to-nats") // the relay's subscriber queue
//	nc, _ := nats.Connect(url, nats.MaxReconnects(-1))
//	js, _ := jetstream.New(nc) // a stream must capture "events.>"
//	r, err := natsrelay.New(natsrelay.Options{Backend: backend, Queue: "orders-to-nats", JetStream: js})
//	r.Start(ctx)
//	defer r.Shutdown(ctx) // the batch in flight finishes, the rest goes back
//
// It is a Go module of its own, so the scalekit module gains no NATS
// dependency.
//
// # What it publishes
//
// An event on topic T arrives in the subscriber queue as one job: Kind T,
// ID the event id, Payload the event's JSON, its ordering key in the
// metadata (queue.MetadataEventKey). The relay publishes it to
// Options.Subject (DefaultSubjectPrefix + T: "events.orders") with the
// payload as the data, the header Nats-Msg-Id set to the event id, the
// key in the header Scalekit-Event-Key (HeaderKey), and every other
// metadata pair (a trace context, a request id) as a header of its own
// name (a pair that cannot be a NATS header, a name with ':' or a space,
// a value with a line break, is left out). The job is completed only after JetStream acknowledged the
// event.
//
// # At least once
//
// A publish that fails or times out (NATS down, slow or restarting) puts
// the event back in the queue without spending an attempt
// (queue.Backend.Release), and the relay pauses, from 100ms doubling to
// Options.MaxBackoff, then tries again: an event is never dead-lettered
// because NATS is down. A relay that dies (even by SIGKILL) leaves its
// events leased; they come back after their lease and are sent again.
// An event sent twice carries the same Nats-Msg-Id, so within the
// stream's duplicate window (StreamConfig.Duplicates, 2 minutes by
// default; keep it longer than 2×Lease) JetStream stores it once and
// Stats.Duplicates counts it; past the window the stream holds a second
// copy with the same id, and consumers deduplicate by it. Only an event
// that can never be published is dead-lettered, its reason as its last
// error: its subject is not a valid literal subject (Options.Subject), or
// it is larger than NATS's max_payload or the stream's MaxMsgSize. The
// other events of its key go on.
//
// # In order per key
//
// Of two events with the same key, enqueued one after the other, the
// stream holds the first before the second, also across a crash of the
// relay and with several relays on one queue:
//
//   - One relay publishes a queue at a time. It holds the queue through a
//     lease on one job of Options.LockQueue ("natsrelay:<queue>"), for
//     2×Lease, renewed every Lease/3. A second relay on the same queue
//     waits (Stats.Owner false) and takes over when the first shuts down
//     (it gives the lease back) or dies (after the lease ran out, 2×Lease
//     at most). A relay stopped while events may be leased to nobody (a
//     fetch cut short by Close, an event it could not give back) keeps
//     the lease until it runs out, as if it had died. Run two for
//     availability; they never publish at once.
//   - The holder fetches a batch only while its hold is sure to outlast
//     the batch's leases, so a successor finds every event its
//     predecessor held due again, never still leased. Its first fetch
//     takes MaxBatch events, so all of them (at most one Batch) come back
//     in that one batch, ahead of the events behind them (a Backend hands
//     out expired and released jobs first: queue.Backend.Fetch). So does
//     its first fetch after a fetch failed (once the leases a lost reply
//     may have granted ran out) or after an event could not be given
//     back.
//   - A batch is put in enqueue order (Message.EnqueuedAt, then the event
//     id): the backends hand redelivered events out first but not in
//     their order. The events of one key are published one after the
//     other, each after the previous one's acknowledgement (different
//     keys go in parallel, Options.Concurrency). When one fails, the
//     rest of its key in the batch is not sent, and every event not
//     acknowledged is released in reverse order, so it is again at the
//     front of the queue, in order (Backend.Release puts a job at the
//     front of its priority).
//
// The order rests on three things outside the relay:
//
//   - Events of one key are enqueued with increasing EnqueuedAt, ties
//     broken by an increasing id. Publish stamps them with the
//     publisher's clock (and the default ids are time-ordered), so the
//     events of one key published from several hosts are ordered by
//     their clocks.
//   - A relay does not stall (a stopped process, a long GC pause) for
//     longer than its hold between checking the hold and publishing:
//     such a relay may publish once more after a successor started. The
//     check before every publish keeps that window to the stall.
//   - On Redis Cluster the hold's job and the events may live on two
//     nodes, whose clocks must agree within Lease/4 (NTP does far
//     better).
//
// Pausing the queue (queue.Client.Pause, `scalekit queue pause`) pauses
// the relay within a second; Resume lets it go on. Stats reports events
// relayed, duplicates, failures, dead letters, batches, whether the
// relay holds the queue and sees it paused, and the lag (the age of the
// oldest event of the last batch).
package natsrelay
