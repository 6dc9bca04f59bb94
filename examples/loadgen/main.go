// Command loadgen drives examples/service with an open-loop load: requests
// start at a fixed arrival rate whatever the service's latency, each in its
// own goroutine, and every latency is measured from the request's intended
// start, so a slow service cannot hide the queueing it causes (no
// coordinated omission).
//
//	go run -C examples ./service &
//	go run -C examples ./loadgen -url http://127.0.0.1:8080 -duration 30s -rate 500 -mix reads=80,writes=10,payments=10
//	go run -C examples ./loadgen -mix reads=70,posts=10,writes=5,payments=10,emails=5 -chaos-provider-fail 0.5 -chaos-stop redis
//
// It prints a progress line every second and, at the end: throughput;
// latency percentiles overall and per kind of request; status codes;
// expected outcomes (429, 404 for an unknown user, 502/503 from the payment
// provider, 409 for a replayed key still running) apart from unexpected
// errors; the payment replay check (a replay must return the original's
// bytes); the read-your-writes check (a client that wrote version v of a
// user never reads an older one: every write is read back at once by the
// same client, whatever the rate, and later reads of users it wrote are
// checked too); the service's /admin/stats and /slo. Each virtual user
// carries its newest read-your-writes token (X-DB-Token) as a careful API
// client does, besides the cookie: concurrent writes can answer out of
// order, and a cookie jar keeps the last token set, not the newest.
//
// Exit status: 1 when anything unexpected happened, 2 for bad flags or an
// unreachable service, else 0.
//
// Only loopback targets are allowed unless -allow-remote is given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2) // parseFlags said what is wrong
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	sum, err := run(ctx, cfg, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
	}
	os.Exit(exitCode(sum, err))
}

// exitCode is the process status for a run: 2 when it could not run, 1 when
// anything unexpected happened, else 0.
func exitCode(s summary, err error) int {
	switch {
	case err != nil:
		return 2
	case s.Unexpected > 0:
		return 1
	}
	return 0
}

// run starts requests at cfg.Rate for cfg.Duration, waits for the last
// ones, prints the report to stdout and returns its numbers. An error means
// the run could not start (bad config, unreachable service, refused chaos);
// an interrupted run (ctx done) still reports what it saw.
func run(ctx context.Context, cfg config, stdout io.Writer) (summary, error) {
	out := &lockedWriter{w: stdout}
	g, err := newGenerator(cfg, out)
	if err != nil {
		return summary{}, err
	}
	defer g.tr.CloseIdleConnections()
	if err := g.preflight(ctx); err != nil {
		return summary{}, err
	}
	replays := ""
	if cfg.Mix[kindPayments] > 0 && cfg.ReplayFraction > 0 {
		replays = fmt.Sprintf(" (%g%% of payments replayed)", 100*cfg.ReplayFraction)
	}
	fmt.Fprintf(out, "loadgen: %g req/s for %v against %s, mix %s%s, timeout %v, max in flight %d, users 1..%d\n",
		cfg.Rate, cfg.Duration, g.base, cfg.Mix, replays, cfg.Timeout, cfg.MaxInflight, cfg.Users)

	g.start = time.Now()
	if cfg.SetProviderFail {
		if !g.chaos(ctx, fmt.Sprintf("provider_fail=%g", cfg.ProviderFail)) {
			return summary{}, fmt.Errorf("-chaos-provider-fail %g: the service refused it (see above)", cfg.ProviderFail)
		}
		g.start = time.Now() // the schedule starts after the call
	}
	var aux sync.WaitGroup
	stopProgress := make(chan struct{})
	if !cfg.Quiet {
		aux.Go(func() { g.progress(stopProgress) })
	}
	if cfg.ChaosStop != "" {
		aux.Go(func() { g.chaosStop(ctx) })
	}
	scheduled := g.schedule(ctx)
	g.reqs.Wait()
	elapsed := time.Since(g.start)
	close(stopProgress)
	aux.Wait()

	// The report's look-ups run even after an interrupt, each bounded.
	bg := context.WithoutCancel(ctx)
	sum := g.summarize(scheduled, elapsed, ctx.Err() != nil)
	sum.Jobs = g.lookUpJobs(bg)
	sum.AdminStats = g.adminStats(bg)
	sum.SLO = g.slo(bg)
	writeReport(out, cfg, sum)
	return sum, nil
}
