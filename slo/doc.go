// Package slo tracks service level objectives: availability (good = not an
// error) and latency (good = within a threshold), each a Target share of
// events over a rolling Window (e.g. 99.9% over 30 days).
//
//	tr, err := slo.NewTracker(slo.TrackerOptions{Availability: 0.999,
//		Latency: 0.99, LatencyThreshold: 250 * time.Millisecond}) // per route, 30-day window
//	http.ListenAndServe(addr, tr.Middleware(mux))
//	mux.Handle("GET /slo", tr.StatusHandler()) // budgets, burn rates, alerts as JSON
//
// # How it works
//
// Recording is O(1) with no allocation and constant memory: events are
// counted into two rings of time buckets, fine ones (Window/43200, 1 minute
// for 30 days) covering Window/120 for alert windows and coarse ones
// (Window/720, 1 hour) covering the whole window. Budget math is over
// events, not averages of ratios: the error budget is (1 - Target) times the
// events in the window, and the burn rate over a window is its error rate
// divided by (1 - Target).
//
// Alerts follow the Google SRE Workbook's multi-window multi-burn-rate
// recipe: by default page at 14.4x over 1h (and 5m) and at 6x over 6h (and
// 30m), ticket at 1x over 3d (and 6h), windows scaled to the objective's
// Window. Evaluate reports changes to the non-blocking OnAlert hook.
//
// Tracker keeps objectives per HTTP route (Middleware) and serves their
// budgets, burn rates and alerts as JSON (StatusHandler).
//
// # Shedding to save the budget
//
// A Shedder (NewShedder) is a policy (Do(ctx, fn) error) that sheds load
// by priority class (package priority) while objectives burn their budget
// too fast: while a Page alert fires, sheddable calls are shed (ErrShed);
// when that objective's budget is spent too, default calls as well; so
// what budget is left goes to critical calls. It evaluates the objectives
// at most every ShedderOptions.Every (1s), and costs an atomic load per
// call in between.
package slo
