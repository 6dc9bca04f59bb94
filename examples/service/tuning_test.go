package main

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// -pprof serves the profiles on a loopback address only.
func TestPprofLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "10.1.2.3:6060", "example.com:6060", "6060"} {
		if srv, _, err := startPprof(addr, slog.New(slog.DiscardHandler)); err == nil {
			srv.Close()
			t.Errorf("startPprof(%q) served; want an error (not loopback)", addr)
		}
	}
	srv, addr, err := startPprof("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("GET /debug/pprof/cmdline: %d %q", resp.StatusCode, body)
	}
	for _, a := range []string{"localhost:0", "[::1]:0"} {
		if err := loopbackOnly(a); err != nil {
			t.Errorf("loopbackOnly(%q): %v", a, err)
		}
	}
}

// Config.DBPoolSize sizes each pool unless the URL does; 0 keeps pgxpool's
// default.
func TestDBPoolSize(t *testing.T) {
	pool := func(size int, url string) int32 {
		t.Helper()
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		a := &app{cfg: Config{DBPoolSize: size}}
		if err := a.configurePool("primary", cfg); err != nil {
			t.Fatal(err)
		}
		return cfg.MaxConns
	}
	const url = "postgres://u@127.0.0.1:5432/db"
	def, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if got := pool(0, url); got != def.MaxConns {
		t.Errorf("DBPoolSize 0: MaxConns %d, want pgxpool's default %d", got, def.MaxConns)
	}
	if got := pool(16, url); got != 16 {
		t.Errorf("DBPoolSize 16: MaxConns %d", got)
	}
	if got := pool(16, url+"?pool_max_conns=7"); got != 7 {
		t.Errorf("DBPoolSize 16 with pool_max_conns=7 in the URL: MaxConns %d, want the URL's", got)
	}
}

// The rate limit's token lease is 1% of the per-second limit, at least 1.
func TestRateLease(t *testing.T) {
	for _, c := range []struct {
		rate float64
		want int
	}{{2000, 20}, {200, 2}, {100, 1}, {50, 1}, {100000, 1000}} {
		if got := rateLease(c.rate); got != c.want {
			t.Errorf("rateLease(%v) = %d, want %d", c.rate, got, c.want)
		}
	}
}
