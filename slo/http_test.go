package slo

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

func TestTrackerMiddlewareAndStatus(t *testing.T) {
	clk := testclock.New()
	tr, err := NewTracker(TrackerOptions{Availability: 0.99, Latency: 0.9, LatencyThreshold: 100 * time.Millisecond, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "boom" {
			http.Error(w, "boom", 500)
			return
		}
		if r.PathValue("id") == "slow" {
			clk.Add(200 * time.Millisecond)
		}
		w.Write([]byte("ok"))
	})
	h := tr.Middleware(mux)
	for _, id := range []string{"1", "2", "boom", "slow", "3", "4", "5", "6", "7", "8"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/users/"+id, nil))
	}
	slos := tr.SLOs()
	var avail, lat *SLO
	for _, s := range slos {
		switch s.Name() {
		case "GET /users/{id} availability":
			avail = s
		case "GET /users/{id} latency":
			lat = s
		}
	}
	if avail == nil || lat == nil {
		t.Fatalf("objectives per route missing: %v", names(slos))
	}
	if b := avail.Budget(); b.Total != 10 || b.Consumed != 1 {
		t.Fatalf("availability %+v, want 1 bad of 10 (the 500)", b)
	}
	if b := lat.Budget(); b.Total != 10 || b.Consumed != 1 {
		t.Fatalf("latency %+v, want 1 slow of 10", b)
	}

	w := httptest.NewRecorder()
	tr.StatusHandler().ServeHTTP(w, httptest.NewRequest("GET", "/slo", nil))
	var doc struct{ Objectives []Status }
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Objectives) != 2 || doc.Objectives[0].Name != "GET /users/{id} availability" || doc.Objectives[0].Total != 10 ||
		doc.Objectives[0].BudgetConsumed != 1 || doc.Objectives[0].BurnRates["1h0m0s"] != 10 || len(doc.Objectives[0].Alerts) != 3 {
		t.Fatalf("status %s", w.Body)
	}
}

func TestTrackerBoundsRoutes(t *testing.T) {
	tr, _ := NewTracker(TrackerOptions{MaxRoutes: 2})
	for _, r := range []string{"a", "b", "c", "d"} {
		tr.Observe(r, 200, 0)
	}
	if got := names(tr.SLOs()); len(got) != 3 { // a, b, other
		t.Fatalf("objectives %v, want a, b and other", got)
	}
	if _, err := NewTracker(TrackerOptions{Latency: 0.9}); err == nil {
		t.Fatal("latency objective without threshold accepted")
	}
}

func names(ss []*SLO) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name())
	}
	return out
}
