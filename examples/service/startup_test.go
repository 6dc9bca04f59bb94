package main

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Started while the replica has not replayed the
// migrations (replay paused), the service must not send reads to it
// ("relation users does not exist", 503) and must not report ready; once
// replay resumes it turns ready and reads go on working.
func TestStartupWaitsForReplicaToReplayMigrations(t *testing.T) {
	r := startRedis(t)
	pg := startPostgres(t)
	pg.WaitReplicaCaughtUp()
	pg.PauseReplay()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var out strings.Builder
	go func() {
		done <- Run(ctx, Config{Addr: "127.0.0.1:0", RedisURL: r.URL(), DatabaseURL: pg.PrimaryURL, ReplicaURLs: []string{pg.ReplicaURL},
			RatePerClient: 10000, DrainDelay: 10 * time.Millisecond, Ready: ready}, &out)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the service did not stop within 30s")
		}
	}()
	var base string
	select {
	case addr := <-ready:
		base = "http://" + addr
	case err := <-done:
		t.Fatalf("the service did not start: %v\n%s", err, out.String())
	case <-time.After(60 * time.Second):
		t.Fatal("the service did not start within 60s")
	}
	c := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i := 1; i <= 20; i++ {
		if code, body := get("/users/" + strconv.Itoa(i)); code != 200 {
			t.Fatalf("a read right after start-up: %d %s", code, body)
		}
	}
	if code, body := get("/health/ready"); code == 200 {
		t.Fatalf("ready while the replica has not replayed the migrations: %s", body)
	}
	pg.ResumeReplay()
	eventually(t, 30*time.Second, "ready after replay resumed", func() bool {
		code, _ := get("/health/ready")
		return code == 200
	})
	if code, body := get("/users/42"); code != 200 {
		t.Fatalf("a read after ready: %d %s", code, body)
	}
}
