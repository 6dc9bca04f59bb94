package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// scrape serves a few requests of every kind the metrics count, then
// returns the service's /metrics text (the exposition format a Prometheus
// server without native histograms reads).
func scrape(t *testing.T) []byte {
	t.Helper()
	base, _ := startService(t, io.Discard)
	client := &http.Client{Timeout: 10 * time.Second}
	for _, r := range []struct{ method, path string }{
		{"GET", "/users/3"}, {"GET", "/users/3"}, {"GET", "/posts?limit=5"}, {"POST", "/users/4/welcome"}, {"GET", "/nowhere"},
	} {
		req, _ := http.NewRequest(r.method, base+r.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return b
}

// TestMetricsLint runs client_golang's linter (what testutil.GatherAndLint
// runs) over the service's real /metrics and then, where it is installed,
// `promtool check metrics` (Debian package prometheus; .ci/run installs
// it, and SCALEKIT_REQUIRE_SERVERS=1 makes its absence a failure): both
// report nothing.
func TestMetricsLint(t *testing.T) {
	m := scrape(t)
	problems, err := promlint.New(bytes.NewReader(m)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("SCALEKIT_REQUIRE_SERVERS") == "1" {
			t.Fatalf("promtool is not installed (apt-get install prometheus): %v", err)
		}
		t.Skipf("promtool is not installed (apt-get install prometheus): %v", err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(m)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestRegistryLint wires the service on its in-memory backends, serves a
// few requests and lints its registry with testutil.GatherAndLint: no
// servers needed, so it runs everywhere.
func TestRegistryLint(t *testing.T) {
	cfg, err := Config{Addr: "127.0.0.1:0", Memory: true}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	a := &app{cfg: cfg, log: cfg.Logger, in: &infra{}}
	t.Cleanup(a.closeAll)
	if err := a.wire(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := a.routes()
	for _, r := range []struct{ method, path string }{
		{"GET", "/users/3"}, {"GET", "/posts?limit=5"}, {"POST", "/users/4/welcome"}, {"GET", "/nowhere"}, {"GET", "/metrics"},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.path, nil))
	}
	problems, err := testutil.GatherAndLint(a.registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
