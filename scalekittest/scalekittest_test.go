package scalekittest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/scalekittest"
)

// The fixtures built on these starters (internal/testinfra) are tested
// there: outages, pauses, the replica, the cluster's slots.

// skipOrFatal skips the test when err says a server binary is missing,
// unless SCALEKIT_REQUIRE_SERVERS=1 (CI), and fails it otherwise.
func skipOrFatal(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, scalekittest.ErrMissingBinary) && os.Getenv("SCALEKIT_REQUIRE_SERVERS") != "1" {
		t.Skip(err)
	}
	t.Fatal(err)
}

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
		skipOrFatal(t, err)
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
		skipOrFatal(t, err)
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

func TestStartChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := scalekittest.StartChromium(ctx, scalekittest.ChromiumOptions{})
	if err != nil {
		skipOrFatal(t, err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.DevToolsURL(), "ws://"+s.Addr()+"/devtools/browser/") || !s.Running() {
		t.Fatalf("DevToolsURL %q (addr %s), running %v", s.DevToolsURL(), s.Addr(), s.Running())
	}
	// The endpoint lists the blank page it opened.
	resp, err := http.Get("http://" + s.Addr() + "/json/list")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"url": "about:blank"`) {
		t.Fatalf("GET /json/list: %s, want the about:blank page", b)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Fatal("Chromium runs after Close")
	}
	if _, err := http.Get("http://" + s.Addr() + "/json/version"); err == nil {
		t.Fatal("the DevTools endpoint answers after Close")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	t.Setenv(scalekittest.ChromiumEnv, "/nonexistent/chromium")
	if _, err := scalekittest.ChromiumBinary(); !errors.Is(err, scalekittest.ErrMissingBinary) {
		t.Fatalf("ChromiumBinary with %s naming nothing: err = %v, want ErrMissingBinary", scalekittest.ChromiumEnv, err)
	}
	if _, err := scalekittest.StartChromium(ctx, scalekittest.ChromiumOptions{}); !errors.Is(err, scalekittest.ErrMissingBinary) || !strings.Contains(err.Error(), scalekittest.ChromiumEnv) {
		t.Fatalf("StartChromium with %s naming nothing: err = %v, want ErrMissingBinary naming the variable", scalekittest.ChromiumEnv, err)
	}
}
