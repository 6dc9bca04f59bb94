package httpx_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/scalekit-go/scalekit/batch"
	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/slo"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

// probe sits between net/http and the middleware stack: it has every
// optional interface of net/http's writer and records the ReadFrom calls
// that reach it.
type probe struct {
	http.ResponseWriter
	mu   sync.Mutex
	srcs []io.Reader
}

func (p *probe) Flush() { p.ResponseWriter.(http.Flusher).Flush() }
func (p *probe) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return p.ResponseWriter.(http.Hijacker).Hijack()
}
func (p *probe) ReadFrom(src io.Reader) (int64, error) {
	p.mu.Lock()
	p.srcs = append(p.srcs, src)
	p.mu.Unlock()
	return p.ResponseWriter.(io.ReaderFrom).ReadFrom(src)
}

// stack puts h behind every HTTP middleware of the module, in the order a
// service stacks them (examples/service does the same).
func stack(t *testing.T, h http.Handler, router *dbrouter.Router) http.Handler {
	t.Helper()
	tracker, err := slo.NewTracker(slo.TrackerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Name: "client", Rate: 1000, Burst: 1000}}})
	if err != nil {
		t.Fatal(err)
	}
	rl, err := ratelimit.NewHTTP(ratelimit.HTTPOptions{Limiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	shed, err := ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	idem, err := idempotency.NewHTTP(idempotency.HTTPOptions{Scope: func(*http.Request) string { return "test-client" }})
	if err != nil {
		t.Fatal(err)
	}
	dbHTTP, err := dbrouter.NewHTTP(dbrouter.HTTPOptions{Router: router, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	return tracker.Middleware(rl.Middleware(shed.Middleware(idem.Middleware(dbHTTP.Middleware(batch.MemoMiddleware(h))))))
}

func websocketAccept(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Behind every middleware of the module, stacked: server-sent events
// stream and flush, a websocket upgrade hijacks the connection, and io.Copy
// of a file reaches net/http's ReadFrom (sendfile) — the wrappers used to
// hide http.Flusher, http.Hijacker and io.ReaderFrom. Each case runs as a
// plain GET and as a POST carrying an Idempotency-Key, so the idempotency
// recorder is in the path too.
func TestOptionalInterfacesSurviveEveryMiddleware(t *testing.T) {
	f := testinfra.Postgres(t)
	router, err := dbrouter.New(context.Background(), dbrouter.Options{Primary: f.Primary, Replicas: []*pgxpool.Pool{f.Replica},
		CheckTimeout: testinfra.CallTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close()

	file := filepath.Join(t.TempDir(), "asset.txt")
	content := strings.Repeat("scalekit sendfile ", 4096)
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}

	var hijacks atomic.Int32
	proceed := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		// A write through the router: the read-your-writes token must be
		// on the response when the first event is flushed.
		if _, err := router.Exec(r.Context(), "SELECT 1"); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fl, ok := w.(http.Flusher)
		if !ok {
			http.Error(w, fmt.Sprintf("no http.Flusher: %T", w), 500)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		fl.Flush()
		select {
		case <-proceed: // the client read event 1 while this handler still ran
			io.WriteString(w, "data: 2\n\n")
		case <-time.After(10 * time.Second):
			io.WriteString(w, "data: never-streamed\n\n")
		}
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		hj, ok := w.(http.Hijacker)
		if !ok {
			http.Error(w, fmt.Sprintf("no http.Hijacker: %T", w), 500)
			return
		}
		conn, rw, err := hj.Hijack()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer conn.Close()
		hijacks.Add(1)
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			websocketAccept(r.Header.Get("Sec-WebSocket-Key")))
		rw.Write([]byte{0x81, 5}) // FIN + text frame, 5 bytes, unmasked (server to client)
		rw.WriteString("hello")
		rw.Flush()
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		fh, err := os.Open(file)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer fh.Close()
		w.Header().Set("Content-Type", "text/plain")
		if _, err := io.Copy(w, fh); err != nil {
			t.Errorf("io.Copy: %v", err)
		}
	})

	h := stack(t, mux, router)
	var last atomic.Pointer[probe]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := &probe{ResponseWriter: w}
		last.Store(p)
		h.ServeHTTP(p, r)
	}))
	defer srv.Close()

	for _, mode := range []string{"GET", "POST+key"} {
		newReq := func(path string) *http.Request {
			method := http.MethodGet
			if mode != "GET" {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, srv.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if mode != "GET" {
				req.Header.Set("Idempotency-Key", "key-"+strings.TrimPrefix(path, "/"))
			}
			return req
		}

		t.Run(mode+"/sse", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			resp, err := http.DefaultClient.Do(newReq("/sse").WithContext(ctx))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if resp.Header.Get("X-DB-Token") == "" {
				t.Fatalf("the read-your-writes token was not set before the first flush: %v", resp.Header)
			}
			br := bufio.NewReader(resp.Body)
			if line, _ := br.ReadString('\n'); line != "data: 1\n" {
				t.Fatalf("first event %q", line)
			}
			proceed <- struct{}{}
			br.ReadString('\n')
			if line, _ := br.ReadString('\n'); line != "data: 2\n" {
				t.Fatalf("second event %q: the first was not streamed before the handler ended", line)
			}
		})

		t.Run(mode+"/websocket", func(t *testing.T) {
			for round := 1; round <= 2; round++ {
				conn, err := net.DialTimeout("tcp", strings.TrimPrefix(srv.URL, "http://"), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				req := newReq("/ws")
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", "websocket")
				req.Header.Set("Sec-WebSocket-Version", "13")
				req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
				if err := req.Write(conn); err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(conn)
				resp, err := http.ReadResponse(br, req)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
					b, _ := io.ReadAll(resp.Body)
					t.Fatalf("upgrade: %d %v %s", resp.StatusCode, resp.Header, b)
				}
				frame := make([]byte, 7)
				if _, err := io.ReadFull(br, frame); err != nil || string(frame[2:]) != "hello" || frame[0] != 0x81 {
					t.Fatalf("frame %q: %v", frame, err)
				}
				conn.Close()
			}
			// A hijacked response cannot be stored: with a key, the second
			// upgrade ran the handler again instead of being refused.
			if got := hijacks.Load(); got%2 != 0 || got == 0 {
				t.Fatalf("%d hijacks after two upgrades", got)
			}
		})

		t.Run(mode+"/file", func(t *testing.T) {
			for round := 1; round <= 2; round++ {
				resp, err := http.DefaultClient.Do(newReq("/file"))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != content {
					t.Fatalf("round %d: status %d, %d bytes (want %d)", round, resp.StatusCode, len(body), len(content))
				}
				replayed := resp.Header.Get("Idempotent-Replayed") == "true"
				if mode == "GET" || round == 1 {
					if replayed {
						t.Fatal("a first request was replayed")
					}
					p := last.Load()
					p.mu.Lock()
					srcs := p.srcs
					p.mu.Unlock()
					if len(srcs) != 1 {
						t.Fatalf("io.Copy reached net/http's ReadFrom %d times: the middleware hid io.ReaderFrom", len(srcs))
					}
					// net's sendfile takes a source it can get a file
					// descriptor from (*os.File, as os.File.WriteTo passes it).
					if _, isFile := srcs[0].(syscall.Conn); mode == "GET" && !isFile {
						t.Fatalf("ReadFrom got a %T, not the file: no sendfile", srcs[0])
					}
				} else if !replayed {
					t.Fatal("the stored file response was not replayed")
				}
			}
		})
	}
}
