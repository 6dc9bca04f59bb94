package dbrouter

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// notesHandler is a handler over r that inserts a note on POST and, on GET,
// reports where the read ran and whether it saw the note.
func notesHandler(t testing.TB, r *Router, mw func(http.Handler) http.Handler) http.Handler {
	t.Helper()
	return mw(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx := req.Context()
		if req.Method == http.MethodPost {
			if _, err := r.Exec(ctx, "INSERT INTO notes VALUES ((SELECT coalesce(max(id), 0) + 1 FROM notes))"); err != nil {
				http.Error(w, err.Error(), 500)
			}
			return
		}
		var rec, found bool
		if err := r.QueryRow(ctx, "SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM notes)").Scan(&rec, &found); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		where := map[bool]string{true: "replica", false: "primary"}[rec]
		w.Write([]byte(where + map[bool]string{true: " found", false: " missing"}[found]))
	}))
}

// Issue 16 item 19: a malformed X-DB-Token header (or a valid but older
// one) must not make the middleware drop the client's good cookie token:
// with replay paused, the read carrying the cookie must see the write.
func TestMiddlewareBadHeaderKeepsCookie(t *testing.T) {
	f := testinfra.Postgres(t)
	r := newReal(t, f, Options{})
	mustExec(t, r, "CREATE TABLE notes (id int PRIMARY KEY)")
	f.WaitReplicaCaughtUp()
	// An older valid token: the primary's position before the write.
	old, err := r.WriteToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mw, err := r.Middleware(HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := notesHandler(t, r, mw)
	f.PauseReplay()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/notes", nil))
	cookies := rec.Result().Cookies()
	if rec.Code != 200 || len(cookies) != 1 {
		t.Fatalf("POST: %d %v", rec.Code, rec.Header())
	}
	for _, header := range []string{"garbage", "1/2", "0/0@-5", old.String()} {
		req := httptest.NewRequest(http.MethodGet, "/notes", nil)
		req.AddCookie(cookies[0])
		req.Header.Set("X-DB-Token", header)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Body.String(); got != "primary found" {
			t.Fatalf("GET with the cookie and header %q: %q, want the write seen on the primary", header, got)
		}
	}
	// And a malformed cookie does not discard a good header.
	req := httptest.NewRequest(http.MethodGet, "/notes", nil)
	req.AddCookie(&http.Cookie{Name: "dbrouter_token", Value: "garbage"})
	req.Header.Set("X-DB-Token", rec.Header().Get("X-DB-Token"))
	rec2 := httptest.NewRecorder()
	h.ServeHTTP(rec2, req)
	if got := rec2.Body.String(); got != "primary found" {
		t.Fatalf("GET with a bad cookie and the good header: %q", got)
	}
	f.ResumeReplay()
	eventually(t, 10*time.Second, "the cookie's reads back on the replica", func() bool {
		req := httptest.NewRequest(http.MethodGet, "/notes", nil)
		req.AddCookie(cookies[0])
		req.Header.Set("X-DB-Token", "garbage")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Body.String() == "replica missing" {
			t.Fatal("stale read with the cookie")
		}
		return rec.Body.String() == "replica found"
	})
}
