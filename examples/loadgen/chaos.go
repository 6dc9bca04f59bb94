package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// phase is what happened to requests meant to start before, during or
// after a -chaos-stop.
type phase struct {
	ok, expected, unexpected atomic.Int64
	lat                      histogram
}

var phaseNames = [3]string{"before stop", "stopped", "after start"}

// chaos POSTs /admin/chaos?query and reports whether the service did it.
func (g *generator) chaos(ctx context.Context, query string) bool {
	ctx, cancel := context.WithTimeout(ctx, max(g.cfg.Timeout, 30*time.Second)) // starting PostgreSQL takes a while
	defer cancel()
	r := g.send(ctx, g.admin, http.MethodPost, "/admin/chaos?"+query, nil)
	var line string
	if r.err != nil {
		line = fmt.Sprintf("chaos %s: %s", query, errClass(r.err))
	} else {
		line = fmt.Sprintf("chaos %s: %d %s", query, r.status, strings.TrimSpace(excerpt(r.body)))
	}
	line = fmt.Sprintf("[%5.1fs] %s", time.Since(g.start).Seconds(), line)
	fmt.Fprintln(g.out, line)
	g.mu.Lock()
	g.events = append(g.events, line)
	g.mu.Unlock()
	return r.err == nil && r.status == http.StatusOK
}

// chaosStop stops ChaosStop at ChaosAt and starts it again at ChaosUntil,
// or at once when the run is interrupted meanwhile.
func (g *generator) chaosStop(ctx context.Context) {
	if !sleepUntil(ctx, g.start.Add(g.cfg.ChaosAt)) {
		return
	}
	// Once sent, the stop must get its answer, or a stopped target could
	// be left stopped.
	if !g.chaos(context.WithoutCancel(ctx), "stop="+g.cfg.ChaosStop) {
		return
	}
	sleepUntil(ctx, g.start.Add(g.cfg.ChaosUntil))
	g.chaos(context.WithoutCancel(ctx), "start="+g.cfg.ChaosStop)
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
