package console_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/console"
)

// The breakers page lists a breaker's last transitions, newest first, as
// relative times with the absolute one on hover, including a change
// that lasted less than a page's refresh.
func TestBreakerTransitions(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	con := newConsole(t, console.Options{Clock: clk})
	b, err := breaker.New(breaker.Options{Name: "payments", ConsecutiveFailures: 1, OpenTimeout: time.Second, Clock: clk})
	must(t, err)
	must(t, con.AddBreaker(b))
	g, err := breaker.NewGroup(breaker.GroupOptions{})
	must(t, err)
	g.Get("host-a")
	must(t, con.AddBreakerGroup(g))
	if body := do(t, con, "GET", "/breakers", nil, nil).Body.String(); !strings.Contains(row(t, body, "payments"), "none yet") ||
		!strings.Contains(row(t, body, "host-a"), "(in a group: not kept)") {
		t.Fatalf("before any transition:\n%s", body)
	}
	b.Do(context.Background(), func(context.Context) error { return errors.New("boom") }) // closed -> open at 12:00:00
	clk.Add(2 * time.Second)
	b.Do(context.Background(), func(context.Context) error { return nil }) // open -> half-open -> closed at 12:00:02
	clk.Add(3 * time.Second)
	r := row(t, do(t, con, "GET", "/breakers", nil, nil).Body.String(), "payments")
	want := `<ol class="transitions">` +
		`<li>half-open &rarr; closed <time datetime="2026-01-01T12:00:02Z" title="2026-01-01T12:00:02Z">3 s ago</time></li>` +
		`<li>open &rarr; half-open <time datetime="2026-01-01T12:00:02Z" title="2026-01-01T12:00:02Z">3 s ago</time></li>` +
		`<li>closed &rarr; open <time datetime="2026-01-01T12:00:00Z" title="2026-01-01T12:00:00Z">5 s ago</time></li></ol>`
	if !strings.Contains(r, want) {
		t.Errorf("the transitions of payments: want\n%s\nin row\n%s", want, r)
	}
}
