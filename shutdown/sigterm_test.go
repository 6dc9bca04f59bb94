package shutdown_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/shutdown"
)

// runChild is the server side of the SIGTERM tests: a real HTTP server
// whose /work handler takes 20ms, /ready from health, and three resources
// that print when they close. mode "graceful" uses the Coordinator; "naive"
// exits on SIGTERM at once, as much code does.
func runChild(mode string) {
	h, _ := health.New(health.Options{CacheTTL: time.Millisecond})
	mux := http.NewServeMux()
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		io.WriteString(w, "ok")
	})
	mux.Handle("/ready", h.Ready())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	fmt.Printf("addr %s\n", ln.Addr())
	if mode == "naive" {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		os.Exit(0)
	}
	c, _ := shutdown.New(shutdown.Options{Readiness: h, DrainDelay: 300 * time.Millisecond, Timeout: 10 * time.Second})
	c.RegisterServer("http", srv)
	for _, name := range []string{"db", "cache", "queue-client"} {
		c.RegisterCloseFunc(name, func(context.Context) error { fmt.Printf("closed %s\n", name); return nil })
	}
	if err := c.Wait(context.Background()); err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

type loadResult struct {
	ok, failed    int64
	sawDraining   bool // readiness answered 503 before the server went away
	closed        []string
	exitCode      int
	sigtermToExit time.Duration
}

// underLoad starts the child, loads it from 16 goroutines, sends SIGTERM and
// acts as a load balancer: it stops sending new requests once readiness
// fails, as a real one does after its probe.
func underLoad(t *testing.T, mode string) loadResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestSIGTERM")
	cmd.Env = append(os.Environ(), "SHUTDOWN_CHILD="+mode)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "addr ") {
		t.Fatalf("child did not print its address: %q", lines.Text())
	}
	base := "http://" + strings.TrimPrefix(lines.Text(), "addr ")
	var res loadResult
	var rest []string
	restDone := make(chan struct{})
	go func() {
		for lines.Scan() {
			rest = append(rest, lines.Text())
		}
		close(restDone)
	}()

	client := &http.Client{Timeout: 5 * time.Second}
	var routable atomic.Bool // the load balancer's view
	routable.Store(true)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the load balancer's readiness probe, every 10ms
		defer wg.Done()
		for routable.Load() {
			resp, err := client.Get(base + "/ready")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusServiceUnavailable {
					res.sawDraining = true
					routable.Store(false)
					// A load balancer that removes a backend drops its pooled
					// connections too. Without this, a spare connection the
					// client dialled but never used (StateNew on the server)
					// holds http.Server.Shutdown for net/http's 5s grace.
					client.CloseIdleConnections()
				}
			}
			select {
			case <-stop:
				routable.Store(false)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	var ok, failed atomic.Int64
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for routable.Load() {
				resp, err := client.Get(base + "/work")
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 && string(body) == "ok" {
						ok.Add(1)
						continue
					}
				}
				failed.Add(1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	res.sigtermToExit = time.Since(t0)
	close(stop)
	wg.Wait()
	<-restDone
	if ee, isExit := err.(*exec.ExitError); isExit {
		res.exitCode = ee.ExitCode()
	}
	for _, l := range rest {
		if name, found := strings.CutPrefix(l, "closed "); found {
			res.closed = append(res.closed, name)
		}
	}
	res.ok, res.failed = ok.Load(), failed.Load()
	return res
}

// TestSIGTERMDropsNothing: under continuous load, SIGTERM makes readiness
// fail before the listener closes, requests in flight finish, no request
// fails, resources close in reverse order and the process exits before the
// deadline. The naive os.Exit server, loaded the same way, drops requests:
// the test can tell the two apart.
func TestSIGTERMDropsNothing(t *testing.T) {
	if mode := os.Getenv("SHUTDOWN_CHILD"); mode != "" {
		runChild(mode)
		return
	}
	g := underLoad(t, "graceful")
	t.Logf("graceful: %d ok, %d failed, readiness drained first: %v, closed %v, exit %d after %v",
		g.ok, g.failed, g.sawDraining, g.closed, g.exitCode, g.sigtermToExit)
	if g.ok < 100 || g.failed != 0 {
		t.Errorf("graceful shutdown: %d ok, %d failed; want many ok and 0 failed", g.ok, g.failed)
	}
	if !g.sawDraining {
		t.Error("readiness never answered 503 before the server went away")
	}
	if strings.Join(g.closed, ",") != "queue-client,cache,db" {
		t.Errorf("closed %v, want reverse registration order queue-client,cache,db", g.closed)
	}
	if g.exitCode != 0 || g.sigtermToExit >= 10*time.Second {
		t.Errorf("exit %d after %v, want 0 before the 10s deadline", g.exitCode, g.sigtermToExit)
	}

	n := underLoad(t, "naive")
	t.Logf("naive os.Exit: %d ok, %d failed", n.ok, n.failed)
	if n.failed == 0 {
		t.Error("the naive server dropped nothing: the test cannot tell graceful from naive")
	}
}
