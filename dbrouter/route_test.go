package dbrouter

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// why is where routeWhy sends a read on ctx and why: "primary" or a
// replica name, then the reason.
func why(r *Router, ctx context.Context) string {
	rep, reason, err := r.routeWhy(ctx)
	switch {
	case err != nil:
		return err.Error() + " " + reason.String()
	case rep == nil:
		return "primary " + reason.String()
	}
	return rep.name + " " + reason.String()
}

// routeWhy gives each decision its reason, as RouteTracer sees it.
func TestRouteReasons(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bg := context.Background()
		r, fp := newFake(t, Options{Interval: time.Second}, 1)
		defer r.Close()
		fp.set(0, up(200))
		time.Sleep(time.Second)
		synctest.Wait()
		for ctx, want := range map[context.Context]string{
			bg:                                     "r0 any",
			Primary(bg):                            "primary intent",
			WithToken(bg, Token{LSN: 150}):         "r0 token",
			WithToken(bg, Token{LSN: 250}):         "primary token",
			WithToken(bg, Token{LSN: 0}):           "r0 any",
			WithToken(bg, Token{Time: time.Now()}): "r0 any",
		} {
			if got := why(r, ctx); got != want {
				t.Errorf("routeWhy = %q, want %q", got, want)
			}
		}

		rw, fpw := newFake(t, Options{Interval: time.Hour, TokenWait: 100 * time.Millisecond, TokenPoll: 10 * time.Millisecond}, 1)
		defer rw.Close()
		fpw.onPoll = func(_ int, st *replicaStatus) {
			if fpw.polls.Load() >= 2 {
				st.lsn = 300
			}
		}
		if got := why(rw, WithToken(bg, Token{LSN: 300})); got != "r0 token_wait" {
			t.Errorf("a token reached while waiting: %q", got)
		}
		if got := why(rw, WithToken(bg, Token{LSN: 400})); got != "primary token_wait" {
			t.Errorf("a token never reached: %q", got)
		}

		r0, _ := newFake(t, Options{}, 0)
		defer r0.Close()
		if got := why(r0, bg); got != "primary primary_only" {
			t.Errorf("no replicas: %q", got)
		}
	})
}

func TestRouteReasonString(t *testing.T) {
	want := []string{"write", "any", "intent", "fallback", "no_replica", "primary_only", "token", "token_wait", "replica_failed", "unknown"}
	for i, w := range want {
		if got := RouteReason(i).String(); got != w {
			t.Errorf("RouteReason(%d) = %q, want %q", i, got, w)
		}
	}
}
