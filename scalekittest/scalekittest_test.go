package scalekittest_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/scalekittest"
)

// The fixtures built on these starters (internal/testinfra) are tested
// there: outages, pauses, the replica, the cluster's slots.

func TestMissingBinaryIsReported(t *testing.T) {
	t.Setenv("SCALEKIT_PG_BINDIR", t.TempDir())
	_, err := scalekittest.StartPostgres(context.Background(), scalekittest.PostgresOptions{})
	if !errors.Is(err, scalekittest.ErrMissingBinary) {
		t.Fatalf("StartPostgres with an empty bin dir: err = %v, want ErrMissingBinary", err)
	}
	if !strings.Contains(err.Error(), "SCALEKIT_PG_BINDIR") {
		t.Fatalf("error does not say what to fix: %v", err)
	}

	t.Setenv("PATH", t.TempDir())
	if _, err := scalekittest.StartRedis(context.Background(), scalekittest.RedisOptions{}); !errors.Is(err, scalekittest.ErrMissingBinary) {
		t.Fatalf("StartRedis without redis-server on PATH: err = %v, want ErrMissingBinary", err)
	}
}

func TestStartersHaveAPlainAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := scalekittest.StartRedis(ctx, scalekittest.RedisOptions{Args: []string{"--maxmemory", "16mb"}})
	if err != nil {
		if errors.Is(err, scalekittest.ErrMissingBinary) && os.Getenv("SCALEKIT_REQUIRE_SERVERS") != "1" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	rc := s.NewClient(0)
	got, err := rc.ConfigGet(ctx, "maxmemory").Result()
	rc.Close()
	if err != nil || got["maxmemory"] != strconv.Itoa(16<<20) {
		t.Fatalf("maxmemory = %v, %v; want Args applied", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Start(ctx); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}

func TestStartNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := scalekittest.StartNATS(ctx, scalekittest.NATSOptions{})
	if err != nil {
		if errors.Is(err, scalekittest.ErrMissingBinary) && os.Getenv("SCALEKIT_REQUIRE_SERVERS") != "1" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.URL(), "nats://127.0.0.1:") || !s.Running() {
		t.Fatalf("URL %q, running %v", s.URL(), s.Running())
	}
	port := s.Port()
	if err := s.Stop(); err != nil || s.Running() {
		t.Fatalf("Stop: %v, running %v", err, s.Running())
	}
	if err := s.Start(ctx); err != nil || !s.Running() || s.Port() != port {
		t.Fatalf("Start: %v, running %v, port %d (was %d)", err, s.Running(), s.Port(), port)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err == nil {
		t.Fatal("Start after Close succeeded")
	}

	t.Setenv("PATH", t.TempDir())
	if _, err := os.Stat("/usr/sbin/nats-server"); err != nil {
		if _, err := scalekittest.StartNATS(ctx, scalekittest.NATSOptions{}); !errors.Is(err, scalekittest.ErrMissingBinary) {
			t.Fatalf("StartNATS without nats-server: err = %v, want ErrMissingBinary", err)
		}
	}
}

func TestStartVarnishBadBackend(t *testing.T) {
	for _, b := range []string{"", "localhost:80", "127.0.0.1"} {
		if _, err := scalekittest.StartVarnish(context.Background(), scalekittest.VarnishOptions{Backend: b}); err == nil || !strings.Contains(err.Error(), "Backend") {
			t.Errorf("Backend %q: %v, want an error naming Backend", b, err)
		}
	}
}
