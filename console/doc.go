// Package console is one operations page for a service's scalekit
// primitives: an http.Handler showing every breaker, limiter, cache,
// queue, database router, SLO and health probe added to it, each green,
// amber or red with the reason, their numbers charted over the last
// hours, the breakers' manual controls and the queues' dead letters and
// controls.
//
//	con, err := console.New(console.Options{
//		Authorize: func(r *http.Request) bool { // required: 401 otherwise
//			want := "Bearer " + os.Getenv("ADMIN_TOKEN")
//			return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) == 1
//		},
//	})
//	if err != nil { ... }
//	con.AddBreaker(paymentsBreaker)
//	con.AddQueue("jobs", queueClient, "mail", "billing")
//	con.AddSLOTracker(tracker)
//	con.Start(ctx); defer con.Close() // samples for the charts
//	mux.Handle("/admin/", http.StripPrefix("/admin", con))
//
// # Pages
//
// The overview ("/admin/") lists every primitive in the order added, with
// its state and why: a breaker open or forced open is red, half-open,
// forced closed or metrics-only amber; a cache whose Store circuit is open
// red; a queue with dead jobs amber, one whose count failed red; a
// dbrouter whose primary is down or whose every replica is ejected red,
// one with an ejected replica or one lagging Options.LagAmber or more
// amber; an SLO with a page-severity burn-rate alert firing (burning
// fast) or a blown budget red, a ticket-severity one amber; a limiter
// whose Redis circuit is open red, one that denied in the last sampled
// interval amber; a batch loader whose fetches failed in the last sampled
// interval amber (AddBatch); an idempotency middleware whose Store
// answered 503s in the last interval red, one whose handlers lost their
// leases amber (AddIdempotency); a worker's queue that is paused, or whose
// handlers panicked or lost leases in the last interval, amber
// (AddQueueWorker); a health probe that fails red, one that warns amber.
// Those three have no page of their own. The breakers
// page ("/admin/breakers") shows each breaker's state, failure rate,
// calls and last transitions (breaker.Transitions, AddBreaker only), with
// buttons to force it open, force it closed, put it in
// metrics-only mode or reset it (breakers added with AddBreaker only: a
// Group creates a breaker on lookup).
//
// The queues page ("/admin/queues") has a section per queue added with
// AddQueue (id "queue-<client>-<queue>"): its counts by state, its lag,
// whether it is paused, and its newest DeadShown dead jobs with their id,
// kind, attempts, args and last error. Its actions are POSTs to
// "queues/action" with the form fields client (the AddQueue name),
// queue, action (requeue, cancel, delete, pause or resume) and id (the
// job's; required by requeue, cancel and delete). They answer 303 to
// "../queues?done=<action>" (the queues page); 400 for a bad action or a
// missing id, 404 for a client or queue not added or an unknown job, 409
// for cancelling a finished job, 502 with the error (passwords masked)
// when the backend fails. A dead job's row has requeue and delete
// buttons (data-action, data-job), a queue a Pause or Resume button
// (data-queue) and a form taking any job id.
//
// The limiters page ("/admin/limiters", AddLimiter: in-process, Redis,
// adaptive and concurrency limiters and the rate limit middleware) shows
// decisions and denials, in total and per second; the caches page
// ("/admin/caches") the hit ratio per tier (L1 in memory, L2 the Store),
// loads, lease waits and stale serves; the dbrouters page
// ("/admin/dbrouters") each replica's lag in bytes of WAL, with its
// ejections marked; the SLOs page ("/admin/slos") the error budget left
// and the burn rate over each alert window; the queues page, each
// queue's throughput (completed jobs per second), lag and jobs by state.
//
// # History and charts
//
// Start samples every primitive's numbers every Options.Sample (10s)
// into an in-memory history of Options.History (3h), bounded per series;
// Close stops it. The pages chart it as server-side SVG (no script),
// units on both axes; rates (decisions/s, completed/s, loads/s) and
// ratios (hit ratio) come from consecutive samples of the counters.
// Without Start the pages show the numbers of the moment only. Start is
// explicit, not lazy: a console started by its first page view would
// chart nothing from before someone looked, and a goroutine started by a
// request would outlive it with no owner to stop it.
//
// Pages are server-rendered with html/template from embedded files: every
// name, reason and error is escaped (a name "<script>" shows as text),
// numbers keep their units, times are relative ("in 28 s") with the
// absolute UTC time in the title attribute (on hover). They need no
// JavaScript and reload themselves every Options.Refresh: with
// JavaScript on, the console's one embedded script (console.js) reloads
// them, waiting while someone types in a form; without it, a meta
// refresh in <noscript> does. Links are relative, so the console mounts
// under any prefix with http.StripPrefix.
//
// # Safe to mount
//
//   - New fails without Options.Authorize, unless
//     Options.InsecureLoopbackOnly is set, which serves requests from a
//     loopback address only (a developer's machine; never behind a proxy on
//     the same host). A refused request gets 401 and no content.
//   - Actions are POSTs checked by http.CrossOriginProtection (Fetch
//     metadata, then Origin against Host): a cross-site POST gets 403. They
//     redirect back (303), so a reload repeats nothing, and are logged to
//     Options.Logger.
//   - Options.ReadOnly hides every action and refuses every POST with 403.
//   - Redirects after an action are relative, so they stay under the
//     prefix the console is mounted at.
//   - No connection string is read: the console sees Stats snapshots only;
//     passwords inside error texts (URL user info, password=... pairs) are
//     masked.
//   - Responses carry a Content-Security-Policy allowing the console's
//     own script and style sheet only (no inline script, no other
//     origin), and Cache-Control: no-store.
//
// Reading the page costs what the primitives' Stats cost; AddQueue's
// counts are I/O (up to 2s) and AddHealth runs the probes' checks (up to
// 5s); those sources are read concurrently. With 50 primitives and a full
// history a page renders in a few milliseconds (BenchmarkPages).
package console
