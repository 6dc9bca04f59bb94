package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
)

// Two writes of one user whose cache write-throughs land
// out of order leave the older copy cached. The client that made the newer
// write must still read it: its token bounds the cache as it bounds
// replicas. (The race is reproduced by setting the older write's copy back
// after the newer write, as the losing write-through does.)
func TestOwnWriteNotHiddenByOlderCachedCopy(t *testing.T) {
	rf := startRedis(t)
	pg := startPostgres(t)
	ctx := context.Background()
	a := &app{cfg: Config{Addr: "test", RatePerClient: 100000, Logger: slog.New(slog.DiscardHandler)}, log: slog.New(slog.DiscardHandler),
		in: &infra{redisURL: rf.URL(), dbURL: pg.PrimaryURL, replicaURLs: []string{pg.ReplicaURL}}}
	defer a.closeAll()
	if err := a.wire(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.routes())
	defer srv.Close()
	pg.WaitReplicaCaughtUp()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	call := func(method, path, body string) User {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var u User
		if resp.StatusCode != 200 || json.Unmarshal(b, &u) != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return u
	}
	first := call("PUT", "/users/5", `{"name":"First","email":"a@example.com"}`)
	older, err := a.userNS.Get(ctx, "5", nil) // the first write's written-through copy
	if err != nil {
		t.Fatal(err)
	}
	pg.PauseReplay() // the replica stays behind the second write
	second := call("PUT", "/users/5", `{"name":"Second","email":"b@example.com"}`)
	if second.Version != first.Version+1 {
		t.Fatalf("versions %d then %d", first.Version, second.Version)
	}
	// The first write's write-through lands last.
	if err := a.userNS.Set(ctx, "5", older); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := call("GET", "/users/5", ""); got.Version != second.Version || got.Name != "Second" {
			t.Fatalf("the writer read version %d (%q) after its write returned version %d", got.Version, got.Name, second.Version)
		}
	}
	pg.ResumeReplay()
}
