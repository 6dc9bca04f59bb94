package idempotency

import (
	"github.com/scalekit-go/scalekit/internal/testlog"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type lockedBuffer = testlog.Buffer

// A handler that flushes (through http.ResponseController, as streaming
// handlers do) before its first write: the recorder used to send its own
// 200 after net/http had sent the implicit one, and net/http logged
// "superfluous response.WriteHeader call". The stored response must still
// be the one the client saw.
func TestFlushBeforeFirstWrite(t *testing.T) {
	m := newMW(t, HTTPOptions{Unscoped: true})
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		io.WriteString(w, "streamed")
	}))
	logs := &lockedBuffer{}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(logs, "", 0)
	srv.Start()
	defer srv.Close()
	for i, want := range []string{"", "true"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/payments", strings.NewReader("{}"))
		req.Header.Set("Idempotency-Key", "flush-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "streamed" || resp.Header.Get("Idempotent-Replayed") != want {
			t.Fatalf("request %d: %d %q replayed=%q", i, resp.StatusCode, body, resp.Header.Get("Idempotent-Replayed"))
		}
	}
	srv.Close() // flushes the server's log writes
	if strings.Contains(logs.String(), "superfluous") {
		t.Fatalf("net/http logged: %s", logs.String())
	}
}
