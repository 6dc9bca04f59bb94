package console

import (
	"fmt"
	"testing"
	"time"
)

// A series keeps its last size points, oldest first; one not sampled for
// the history's length is dropped; memory stays bounded.
func TestHistoryBounded(t *testing.T) {
	h := newHistory(time.Minute, 10*time.Second) // 7 points
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20 {
		ms := []metric{{"a", float64(i)}}
		if i < 3 {
			ms = append(ms, metric{"gone", 1})
		}
		h.record(t0.Add(time.Duration(i)*10*time.Second), ms)
	}
	pts := h.get("a")
	if len(pts) != 7 || pts[0].v != 13 || pts[6].v != 19 {
		t.Fatalf("points %v, want the last 7 (13..19)", pts)
	}
	if h.get("gone") != nil || len(h.series) != 1 {
		t.Fatalf("a series not sampled for a minute is kept: %d series", len(h.series))
	}
	if r, ok := h.lastRate("a"); !ok || r != 0.1 {
		t.Fatalf("lastRate = %v %v, want 0.1/s", r, ok)
	}
	if big := newHistory(24*time.Hour, time.Second); big.size != maxPoints {
		t.Fatalf("a day at 1s keeps %d points, want the cap %d", big.size, maxPoints)
	}
}

func TestDerived(t *testing.T) {
	p := func(s int64, v float64) point { return point{s * 1e9, v} }
	for _, tc := range []struct{ got, want []point }{
		{rate([]point{p(0, 0), p(10, 50), p(20, 50), p(30, 10)}), []point{p(10, 5), p(20, 0), p(30, 0)}}, // a reset counts 0
		{increments([]point{p(0, 1), p(10, 1), p(20, 3)}), []point{p(20, 2)}},
		{ratio([]point{p(0, 0), p(10, 3), p(20, 3), p(30, 4)}, []point{p(0, 0), p(10, 1), p(20, 1), p(30, 4)}), []point{p(10, 0.75), p(30, 0.25)}},
	} {
		if fmt.Sprint(tc.got) != fmt.Sprint(tc.want) {
			t.Errorf("got %v, want %v", tc.got, tc.want)
		}
	}
}
