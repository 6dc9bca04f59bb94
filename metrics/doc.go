// Package metrics provides Prometheus collectors for scalekit's primitives:
// add the primitives to a Collector and register it on your registry.
//
//	m, err := metrics.New(metrics.Options{Instance: "api-1"})
//	err = errors.Join(
//		m.AddBreaker(payments),               // a *breaker.Breaker, named by its Options.Name
//		m.AddCache("users", usersCache),      // any *cache.Cache[V]
//		m.AddSLOTracker(tracker),             // every route's objectives
//		m.AddQueueWorker("jobs", worker),     // a *queue.Worker: what it did
//		m.AddQueue("jobs", client, "emails"), // the queue's counts, read from its backend
//		m.AddScheduler("cron", scheduler),    // a *queue.Scheduler: ticks per schedule
//		m.AddDBRouter("main", router),        // a *dbrouter.Router
//		m.AddShard("orders", shards),         // a *shard.Router: its map, not its clusters
//		m.AddShardStore("orders", store),     // a *shard.MapStore: watch, fenced retries, moves
//		m.AddRequestID("api", ids),           // a *requestid.HTTP
//	) // ErrDuplicate: a name added twice; ErrInvalid: a nil primitive
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(m)
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// # How it works
//
// The collectors read each primitive's Stats snapshot at scrape time, so
// recording costs the primitives nothing beyond the atomic counters they
// keep anyway, and nothing runs between scrapes.
//
// The package never registers anything on the global registry
// (prometheus.DefaultRegisterer): register the Collector on a registry of
// your own (or on the default one yourself, if you must).
//
// # Names and labels
//
// Every metric is named scalekit_<primitive>_<metric>, with its unit in the
// name (_seconds, _bytes, _events, _keys, _ratio) and _total on counters.
// Every metric carries:
//
//   - instance_name, a constant label holding Options.Instance (left out
//     when it is empty). It is not "instance", which Prometheus sets on
//     every scraped target;
//   - name, the primitive instance: a breaker's or an SLO's own name, or the
//     name given to the Add method.
//
// Outcomes that add up to a whole share one counter with a label (result,
// tier, mode, trigger, reason, intent). States are state sets: one gauge
// per possible state, 1 for the current one and 0 for the others, so
// scalekit_breaker_state{state="open"} == 1 selects the open breakers
// whatever the numbering of breaker.State. (scalekit_queue_jobs{state} is
// not a state set: it counts the jobs in each state.)
//
// A primitive holding several things labels them: queue for the queues of
// a worker or client, replica for a router's replicas (its name in
// dbrouter.Stats).
//
// # Metrics
//
// Labels past name and instance_name are in braces; the values of the
// result, state and mode labels are listed in each metric's help text.
//
//	metric                                                                  type       meaning
//	breaker (AddBreaker, AddBreakerGroup)
//	scalekit_breaker_state{state}                                           gauge      1 for the current state: closed, open, half-open, forced-open, forced-closed, metrics-only
//	scalekit_breaker_calls_total{result}                                    counter    calls: success, failure, ignored, rejected
//	scalekit_breaker_slow_calls_total                                       counter    calls slower than SlowCallThreshold
//	scalekit_breaker_transitions_total                                      counter    state changes
//	scalekit_breaker_probe_timeouts_total                                   counter    half-open probes past HalfOpenMaxWait
//	scalekit_breaker_would_trips_total                                      counter    trips a metrics-only breaker would have made
//	scalekit_breaker_consecutive_failures                                   gauge      current run of failures
//	scalekit_breaker_window_calls                                           gauge      calls in the rate window
//	scalekit_breaker_window_failures                                        gauge      failures in the rate window
//	scalekit_breaker_window_slow_calls                                      gauge      slow calls in the rate window
//	scalekit_breaker_open_until_timestamp_seconds                           gauge      when an open breaker probes (Unix); 0 unless open
//	retry (AddRetrier, AddRetryBudget)
//	scalekit_retry_calls_total                                              counter    calls to the retrier
//	scalekit_retry_attempts_total                                           counter    attempts, first ones included
//	scalekit_retry_retries_total                                            counter    attempts after the first
//	scalekit_retry_exhausted_total                                          counter    give-ups, any reason
//	scalekit_retry_exhausted_by_budget_total                                counter    give-ups because the budget was empty
//	scalekit_retry_not_retried_total                                        counter    failed calls left to the layer above (a retried request)
//	scalekit_retry_budget_deposits_total                                    counter    calls recorded by the budget
//	scalekit_retry_budget_withdrawals_total                                 counter    retries the budget allowed
//	scalekit_retry_budget_refusals_total                                    counter    retries the budget refused
//	scalekit_retry_budget_tokens                                            gauge      retries the budget would allow now
//	ratelimit (AddLimiter, AddConcurrency, AddAdaptive, AddRateLimitMiddleware)
//	scalekit_ratelimit_decisions_total{result}                              counter    decisions: allowed, denied
//	scalekit_ratelimit_keys                                                 gauge      keys held
//	scalekit_ratelimit_keys_swept_total                                     counter    full keys dropped (lossless)
//	scalekit_ratelimit_keys_evicted_total                                   counter    active keys dropped at MaxKeys
//	scalekit_ratelimit_concurrency_acquisitions_total{result}               counter    slot requests: acquired, rejected
//	scalekit_ratelimit_adaptive_limit                                       gauge      current in-flight limit
//	scalekit_ratelimit_adaptive_in_flight                                   gauge      calls in flight
//	scalekit_ratelimit_adaptive_calls_total{result}                         counter    calls: admitted, shed
//	scalekit_ratelimit_adaptive_cuts_total                                  counter    limit cuts on overload
//	scalekit_ratelimit_http_requests_total{result}                          counter    middleware requests: allowed, denied, bad_key, error
//	bulkhead (AddBulkhead)
//	scalekit_bulkhead_max_concurrent                                        gauge      Options.MaxConcurrent
//	scalekit_bulkhead_max_waiting                                           gauge      Options.MaxWaiting
//	scalekit_bulkhead_in_flight                                             gauge      calls holding a slot
//	scalekit_bulkhead_waiting                                               gauge      calls waiting for a slot
//	scalekit_bulkhead_admitted_total                                        counter    calls given a slot
//	scalekit_bulkhead_waited_total                                          counter    calls given a slot after waiting
//	scalekit_bulkhead_rejections_total{reason}                              counter    rejections: queue_full, max_wait, shed
//	scalekit_bulkhead_rejections_by_class_total{class}                      counter    rejections by priority: sheddable, default, critical
//	scalekit_bulkhead_cancelled_total                                       counter    waiting calls whose ctx ended
//	scalekit_retry_pacer_requests_total{result}                             counter    pacer requests: sent, waited, refused (AddRetryPacer)
//	scalekit_slo_shed_level{state}                                          gauge      what an SLO shedder sheds: none, sheddable, default (AddSLOShedder)
//	scalekit_slo_shed_total{class}                                          counter    calls shed: sheddable, default, critical
//	throttle (AddThrottler)
//	scalekit_throttle_calls_total                                           counter    calls to the throttler
//	scalekit_throttle_throttled_total{class}                                counter    calls refused locally: sheddable, default, critical
//	scalekit_throttle_rejected_total                                        counter    calls the backend refused
//	scalekit_throttle_window_requests                                       gauge      requests in the window
//	scalekit_throttle_window_accepts                                        gauge      accepts in the window
//	scalekit_throttle_probability_ratio                                     gauge      refusal probability of a default call
//	timeout (AddTimeout)
//	scalekit_timeout_calls_total                                            counter    calls under the timeout
//	scalekit_timeout_timeouts_total                                         counter    calls failed past the deadline
//	ratelimitredis (AddRedisLimiter, AddRedisConcurrency)
//	scalekit_ratelimit_redis_decisions_total{result}                        counter    decisions Redis made: allowed, denied
//	scalekit_ratelimit_redis_degraded_decisions_total{mode}                 counter    decisions without Redis: fail_open, fail_closed, fallback
//	scalekit_ratelimit_redis_errors_total                                   counter    failed round trips
//	scalekit_ratelimit_redis_skipped_total                                  counter    decisions the open circuit kept from Redis
//	scalekit_ratelimit_redis_circuit_state{state}                           gauge      circuit around Redis: closed, open, half-open
//	scalekit_ratelimit_redis_round_trips_total                              counter    calls sent to Redis to decide
//	scalekit_ratelimit_redis_batches_total                                  counter    round trips carrying a batch (coalesced calls, AllowMany)
//	scalekit_ratelimit_redis_batched_decisions_total                        counter    decisions in batches (/ batches: mean size)
//	scalekit_ratelimit_redis_token_leases_total                             counter    token leases asked of Redis
//	scalekit_ratelimit_redis_token_lease_events_total{result}               counter    leased events: leased, spent, expired
//	scalekit_ratelimit_redis_concurrency_acquisitions_total{result}         counter    slot requests Redis decided: acquired, rejected
//	scalekit_ratelimit_redis_concurrency_degraded_acquisitions_total{mode}  counter    slot requests without Redis: fail_open, fail_closed, fallback
//	scalekit_ratelimit_redis_concurrency_releases_total                     counter    slots released
//	scalekit_ratelimit_redis_concurrency_renewals_total                     counter    lease renewals
//	scalekit_ratelimit_redis_concurrency_leases_lost_total                  counter    leases found gone when renewing
//	scalekit_ratelimit_redis_concurrency_errors_total                       counter    failed round trips
//	scalekit_ratelimit_redis_concurrency_skipped_total                      counter    requests the open circuit kept from Redis
//	scalekit_ratelimit_redis_concurrency_leases_held                        gauge      leases this process holds
//	scalekit_ratelimit_redis_concurrency_circuit_state{state}               gauge      circuit around Redis: closed, open, half-open
//	cache (AddCache)
//	scalekit_cache_hits_total{tier}                                         counter    l1: fresh in-process values served; l2: keys found in the Store
//	scalekit_cache_misses_total{tier}                                       counter    l1: Gets that waited for the Store or a load; l2: keys not in the Store
//	scalekit_cache_negative_hits_total                                      counter    remembered not-founds served
//	scalekit_cache_stale_served_total                                       counter    stale values served while refreshing
//	scalekit_cache_refreshes_total{trigger}                                 counter    background refreshes: early (XFetch), stale
//	scalekit_cache_loads_total                                              counter    loader calls
//	scalekit_cache_load_errors_total                                        counter    failed loader calls
//	scalekit_cache_load_panics_total                                        counter    panicking loader calls
//	scalekit_cache_coalesced_total                                          counter    Gets that joined a load in flight
//	scalekit_cache_l2_errors_total                                          counter    failed Store calls
//	scalekit_cache_l2_skipped_total                                         counter    Store calls the open circuit skipped
//	scalekit_cache_l2_circuit_state{state}                                  gauge      circuit around the Store: closed, open, half-open
//	scalekit_cache_leases_won_total                                         counter    loads done under a fill lease
//	scalekit_cache_lease_waits_total                                        counter    misses that waited for another instance's fill
//	scalekit_cache_lease_busy_total                                         counter    refreshes left to another instance
//	scalekit_cache_lease_timeouts_total                                     counter    fill waits that gave up
//	scalekit_cache_fills_refused_total                                      counter    fills voided by Set, Delete or an expired lease
//	scalekit_cache_codec_errors_total                                       counter    values that could not be encoded or decoded
//	scalekit_cache_invalidations_total                                      counter    invalidation messages applied
//	scalekit_cache_l1_entries                                               gauge      in-process entries (estimate)
//	scalekit_cache_pending_invalidations                                    gauge      invalidations kept while the Store is down
//	scalekit_cache_delayed_invalidations_total                              counter    kept invalidations delivered late
//	scalekit_cache_pending_overflows_total                                  counter    kept invalidations collapsed into a full flush
//	scalekit_cache_resubscribes_total                                       counter    subscription came back after a lost connection (L1 dropped)
//	scalekit_cache_feed_losses_total                                        counter    a tracking Store's invalidation feed was lost (L1 dropped)
//	batch (AddBatch)
//	scalekit_batch_loads_total                                              counter    keys asked for
//	scalekit_batch_deduped_total                                            counter    loads that joined a key in the open batch
//	scalekit_batch_cancelled_total                                          counter    callers whose ctx ended
//	scalekit_batch_fetch_keys                                               histogram  keys per fetch (buckets batch.SizeBuckets; _count fetches, _sum keys)
//	scalekit_batch_fetch_errors_total                                       counter    fetches that failed
//	scalekit_batch_fetch_panics_total                                       counter    fetches that panicked
//	scalekit_batch_wait_seconds_total                                       counter    time batches stayed open before their fetch
//	idempotency (AddIdempotency)
//	scalekit_idempotency_requests_total{result}                             counter    keyed requests: executed, replayed, conflict, mismatch, bad_key, unavailable
//	scalekit_idempotency_released_total                                     counter    keys given back (5xx, panic, oversized response)
//	scalekit_idempotency_lease_lost_total                                   counter    requests whose lease was lost while the handler ran
//	requestid (AddRequestID)
//	scalekit_requestid_requests_total{source}                               counter    requests given an ID: header, traceparent, generated
//	scalekit_requestid_replaced_total                                       counter    incoming IDs refused (too long, bad characters) and replaced
//	slo (AddSLO, AddSLOTracker)
//	scalekit_slo_target_ratio                                               gauge      target share of good events
//	scalekit_slo_window_seconds                                             gauge      rolling window
//	scalekit_slo_window_events                                              gauge      events in the window
//	scalekit_slo_window_good_events                                         gauge      good events in the window
//	scalekit_slo_error_budget_allowed_events                                gauge      bad events allowed: (1 - target) * events
//	scalekit_slo_error_budget_consumed_events                               gauge      bad events in the window
//	scalekit_slo_error_budget_remaining_events                              gauge      allowed - consumed
//	scalekit_slo_error_budget_remaining_ratio                               gauge      share of the budget left (1 untouched, < 0 blown)
//	scalekit_slo_burn_rate{window}                                          gauge      burn rate over each alert window ("5m", "1h", "3d")
//	scalekit_slo_alert_firing{alert,severity}                               gauge      1 while a burn-rate alert rule fires
//	health (AddHealth)
//	scalekit_health_check_runs_total                                        counter    check executions (cache hits are not runs)
//	scalekit_health_draining                                                gauge      1 while readiness is forced to fail
//	scalekit_health_probe_status{probe,status}                              gauge      1 for the probe's status: pass, warn, fail
//	scalekit_health_check_up{probe,check}                                   gauge      1 when the check passes, 0 when it fails
//	scalekit_health_check_latency_seconds{probe,check}                      gauge      duration of the check's latest run
//	queue (AddQueueWorker)
//	scalekit_queue_fetched_total{queue}                                     counter    jobs leased by the worker (each attempt)
//	scalekit_queue_processed_total{queue}                                   counter    jobs completed
//	scalekit_queue_failed_total{queue}                                      counter    failed attempts, panics included
//	scalekit_queue_retried_total{queue}                                     counter    failed attempts scheduled again
//	scalekit_queue_dead_lettered_total{queue}                               counter    jobs sent to the dead letters
//	scalekit_queue_released_total{queue}                                    counter    jobs given back at shutdown
//	scalekit_queue_leases_lost_total{queue}                                 counter    leases lost to expiry (no outcome recorded)
//	scalekit_queue_cancelled_total{queue}                                   counter    running jobs cancelled or deleted (no outcome recorded)
//	scalekit_queue_handler_panics_total{queue}                              counter    handler panics
//	scalekit_queue_rate_limited_total{queue}                                counter    jobs given back unrun: the queue's Limiter refused them
//	scalekit_queue_snoozed_total{queue}                                     counter    jobs given back to run later by queue.Snooze (no attempt spent)
//	scalekit_queue_in_flight{queue}                                         gauge      jobs running in the worker
//	queue (AddQueue: the backend's counts, read during the scrape)
//	scalekit_queue_counts_up{queue}                                         gauge      1 when the count succeeded; 0 and no series below when not
//	scalekit_queue_jobs{queue,state}                                        gauge      jobs per state: pending, scheduled, active, retry, dead, done, cancelled
//	scalekit_queue_oldest_pending_seconds{queue}                            gauge      age of the oldest due job (lag); 0 when none waits
//	queue (AddScheduler: a queue.Scheduler's periodic schedules)
//	scalekit_queue_periodic_ticks_total{schedule,outcome}                   counter    ticks handled: emitted, duplicate, overlapped, missed, failed
//	scalekit_queue_periodic_next_tick_timestamp_seconds{schedule}           gauge      when the next tick is due (Unix time)
//	dbrouter (AddDBRouter)
//	scalekit_dbrouter_fallbacks_total                                       counter    reads sent to the primary as every replica was ejected (or behind the floor)
//	scalekit_dbrouter_token_primary_reads_total                             counter    reads sent to the primary by their token
//	scalekit_dbrouter_token_waits_total                                     counter    token reads that waited for a replica and got one
//	scalekit_dbrouter_retries_total{reason}                                 counter    replica reads run again on the primary: replica_failed, read_only
//	scalekit_dbrouter_no_replica_errors_total                               counter    reads refused with ErrNoReplica
//	scalekit_dbrouter_forged_tokens_total                                   counter    reads whose token was beyond the primary's WAL (forged): clamped
//	scalekit_dbrouter_failovers_total                                       counter    moves of the writes to a promoted server (Options.Failover)
//	scalekit_dbrouter_lost_tokens_total                                     counter    reads whose token's write was lost in a failover (past the switch point)
//	scalekit_dbrouter_split_brain_checks_total                              counter    checks that saw more than one server claim to be the primary
//	scalekit_dbrouter_primary_up                                            gauge      1 when the last check of the primary succeeded
//	scalekit_dbrouter_primary_timeline                                      gauge      the write server's timeline (rises with each promotion)
//	scalekit_dbrouter_primary_wal_lsn_bytes                                 gauge      pg_current_wal_lsn() at the last good check
//	scalekit_dbrouter_primary_calls_total{intent}                           counter    calls routed to the primary: read, write
//	scalekit_dbrouter_primary_checks_total{result}                          counter    monitor checks: success, failure
//	scalekit_dbrouter_primary_last_check_timestamp_seconds                  gauge      when the monitor last checked (Unix); 0 before
//	scalekit_dbrouter_primary_pool_connections{state}                       gauge      primary pool connections: acquired, idle, constructing
//	scalekit_dbrouter_primary_pool_max_connections                          gauge      primary pool size
//	scalekit_dbrouter_primary_pool_acquires_total                           counter    connections handed out
//	scalekit_dbrouter_primary_pool_acquire_seconds_total                    counter    total acquire wait
//	scalekit_dbrouter_primary_pool_empty_acquires_total                     counter    acquires that found no idle connection (pool too small)
//	scalekit_dbrouter_primary_pool_empty_acquire_wait_seconds_total         counter    their total wait
//	scalekit_dbrouter_primary_pool_canceled_acquires_total                  counter    acquires whose ctx ended while waiting
//	scalekit_dbrouter_primary_queries_total                                 counter    queries its Tracer saw (pools with a Tracer only)
//	scalekit_dbrouter_primary_query_errors_total                            counter    failed queries (Tracer)
//	scalekit_dbrouter_primary_slow_queries_total                            counter    queries at or over SlowThreshold (Tracer)
//	scalekit_dbrouter_primary_query_duration_seconds_total                  counter    total query time (Tracer)
//	scalekit_dbrouter_replica_healthy{replica}                              gauge      1 while reads may go to the replica, 0 while ejected
//	scalekit_dbrouter_replica_replay_lsn_bytes{replica}                     gauge      pg_last_wal_replay_lsn() at the last check or poll
//	scalekit_dbrouter_replica_lag_bytes{replica}                            gauge      WAL bytes behind the primary; left out when unmeasured
//	scalekit_dbrouter_replica_in_flight{replica}                            gauge      the router's reads running on it
//	scalekit_dbrouter_replica_reads_total{replica}                          counter    reads routed to it
//	scalekit_dbrouter_replica_failed_reads_total{replica}                   counter    reads that failed for want of the server
//	scalekit_dbrouter_replica_ejections_total{replica}                      counter    moves out of the healthy set
//	scalekit_dbrouter_replica_readmissions_total{replica}                   counter    moves back into the healthy set
//	scalekit_dbrouter_replica_checks_total{replica,result}                  counter    monitor checks: success, failure
//	scalekit_dbrouter_replica_last_check_timestamp_seconds{replica}         gauge      when the monitor last checked (Unix); 0 before
//	scalekit_dbrouter_replica_replay_regressions_total{replica}             counter    replay LSN readings that went backwards (a load balancer)
//	scalekit_dbrouter_replica_pool_connections{replica,state}               gauge      replica pool connections: acquired, idle, constructing
//	scalekit_dbrouter_replica_pool_max_connections{replica}                 gauge      replica pool size
//	scalekit_dbrouter_replica_pool_acquires_total{replica}                  counter    connections handed out
//	scalekit_dbrouter_replica_pool_acquire_seconds_total{replica}           counter    total acquire wait
//	scalekit_dbrouter_replica_pool_empty_acquires_total{replica}            counter    acquires that found no idle connection (pool too small)
//	scalekit_dbrouter_replica_pool_empty_acquire_wait_seconds_total{replica} counter    their total wait
//	scalekit_dbrouter_replica_pool_canceled_acquires_total{replica}         counter    acquires whose ctx ended while waiting
//	scalekit_dbrouter_replica_queries_total{replica}                        counter    queries its Tracer saw (pools with a Tracer only)
//	scalekit_dbrouter_replica_query_errors_total{replica}                   counter    failed queries (Tracer)
//	scalekit_dbrouter_replica_slow_queries_total{replica}                   counter    queries at or over SlowThreshold (Tracer)
//	scalekit_dbrouter_replica_query_duration_seconds_total{replica}         counter    total query time (Tracer)
//	shard (AddShard)
//	scalekit_shard_virtual_shards                                           gauge      Options.VirtualShards
//	scalekit_shard_clusters                                                 gauge      clusters known, holding vshards or not
//	scalekit_shard_map_version                                              gauge      version of the map in use
//	scalekit_shard_map_swaps_total                                          counter    maps SetMap installed
//	scalekit_shard_maps_refused_total                                       counter    maps SetMap refused: stale or invalid
//	scalekit_shard_no_key_total                                             counter    calls refused with ErrNoShardKey
//	scalekit_shard_fanouts_total                                            counter    fan-outs (Each, Gather, GatherSorted) that ran
//	scalekit_shard_fanouts_failed_total                                     counter    fan-outs in which a cluster's call failed
//	scalekit_shard_cluster_vshards{cluster}                                 gauge      virtual shards the map in use gives the cluster
//	scalekit_shard_cluster_fanout_calls_total{cluster}                      counter    fan-out calls on the cluster
//	scalekit_shard_cluster_fanout_errors_total{cluster}                     counter    of those, failed or never started
//	scalekit_shard_cluster_fanout_timeouts_total{cluster}                   counter    of those errors, past EachOptions.Timeout
//	shard map store (AddShardStore)
//	scalekit_shard_store_notifications_total                                counter    map change notifications Watch received
//	scalekit_shard_store_polls_total                                        counter    re-reads of the map for want of a notification
//	scalekit_shard_store_reconnects_total                                   counter    reconnects of Watch's LISTEN connection
//	scalekit_shard_store_retried_writes_total                               counter    writes Do ran again after a move's fence refused them
//	scalekit_shard_store_moves_total                                        counter    virtual shard moves finished
//	scalekit_shard_store_last_move_fence_seconds                            gauge      the last move's write pause
//
// The probe metrics of health exist for the probes given to AddHealth,
// which reads them with health.Health.Run during the scrape (see AddHealth).
//
// # HTTP requests (RED)
//
// NewHTTP is the other kind of thing here: middleware that records every
// request as it is served (rate, errors, duration), since those numbers
// exist nowhere to be read at scrape time. It registers its own metrics on
// the registry given in HTTPOptions.Registerer:
//
//	scalekit_http_requests_total{route,method,status_class}             counter    requests served
//	scalekit_http_request_duration_seconds{route,method,status_class}   histogram  time to serve them: native, with classic buckets, exemplars trace_id and request_id
//	scalekit_http_requests_in_flight                                    gauge      requests being served
//
// route is the http.ServeMux pattern that matched ("GET /users/{id}"), or
// "unmatched": never the raw path. Wrap the mux itself and put middleware
// that copy the request (requestid's) or answer for the mux (a 429)
// outside, or give the mux as HTTPOptions.Mux, as Middleware explains:
//
//	red, err := metrics.NewHTTP(metrics.HTTPOptions{Registerer: reg, Mux: mux})
//	handler := ids.Middleware(red.Middleware(limits.Middleware(mux)))
//
// Cost: the middleware allocates nothing per request (its response
// wrapper comes from a pool, and keeps the writer's http.Flusher,
// http.Hijacker and io.ReaderFrom exactly when it has them); with
// requestid's in front the pair makes 2 allocations (the context and the
// request copy) and costs a few hundred ns over a bare handler:
// BenchmarkMiddleware in bench/ compares it with otelhttp and
// slok/go-http-metrics.
//
// # Reads during the scrape
//
// Two Add methods do I/O when scraped rather than read a snapshot only:
// AddHealth (above) and AddQueue, which asks the queue's backend for its
// counts (queue.Client.Counts: a query on queuepg, a script on
// queueredis), the queues of one AddQueue at once, bounded by 2s. A
// backend that fails or runs out of time does not fail the scrape: its
// queue reports scalekit_queue_counts_up 0 and no jobs or oldest_pending
// series until it answers again, the usual "up" pattern of exporters, so
// alert on scalekit_queue_counts_up == 0 rather than on absent job
// counts. AddQueueWorker reads only the worker's own counters: they are
// what this process did, while AddQueue's gauges are the queue as every
// worker and producer left it.
//
// A value that is unknown is left out rather than reported as 0 where 0
// means something: scalekit_dbrouter_replica_lag_bytes is missing while
// the monitor cannot measure a replica's lag (the replica or the primary
// unreachable; scalekit_dbrouter_replica_healthy and
// scalekit_dbrouter_primary_up say which). WAL positions and check times
// are 0 before the first check, a value no real position or time has.
package metrics
