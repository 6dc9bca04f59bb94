package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/scalekittest"
)

// TestThroughVarnish runs the service behind a real Varnish (with xkey):
// GET /users/{id} and GET /posts are cached at the edge for exactly what
// the headers say, a revalidation is a 304, a PUT with a stale If-Match
// is refused, and a PUT purges the user's key (its page and the posts
// page it appears on) through the job its transaction enqueued, while
// other users stay cached.
func TestThroughVarnish(t *testing.T) {
	r := startRedis(t)
	pg := startPostgres(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // the service's address, for Varnish's backend
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
	defer scancel()
	v, err := scalekittest.StartVarnish(sctx, scalekittest.VarnishOptions{Backend: addr})
	if err != nil {
		skipOrFail(t, err)
	}
	defer v.Close()

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var out strings.Builder
	go func() {
		done <- Run(ctx, Config{Addr: addr, RedisURL: r.URL(), DatabaseURL: pg.PrimaryURL, ReplicaURLs: []string{pg.ReplicaURL},
			RatePerClient: 1000, DrainDelay: 10 * time.Millisecond, StatsRefresh: time.Hour, Ready: ready, PurgeURL: v.URL()}, &out)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the service did not stop within 30s")
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("the service did not start: %v\n%s", err, out.String())
	case <-time.After(60 * time.Second):
		t.Fatal("the service did not start within 60s")
	}
	pg.WaitReplicaCaughtUp()

	client := &http.Client{Timeout: 10 * time.Second} // no cookie jar: no read-your-writes token, as a CDN's visitors
	call := func(method, path, body string, hdr ...string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(method, v.URL()+strings.TrimPrefix(path, "/"), strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	cached := func(path string) string {
		t.Helper()
		code, h, body := call("GET", path, "")
		if code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		return h.Get("X-Cache")
	}

	// The posts page and the users on it.
	code, h, body := call("GET", "/posts?limit=5", "")
	var posts []Post
	if code != 200 || json.Unmarshal([]byte(body), &posts) != nil || len(posts) != 5 {
		t.Fatalf("GET /posts: %d %.200s", code, body)
	}
	if cc := h.Get("Cache-Control"); cc != "public, max-age=10, s-maxage=60, stale-while-revalidate=30" {
		t.Fatalf("GET /posts Cache-Control %q", cc)
	}
	keys := strings.Fields(h.Get("Surrogate-Key"))
	if len(keys) < 2 || keys[0] != "posts" || keys[1] != "user:"+strconv.FormatInt(posts[0].Author.ID, 10) {
		t.Fatalf("GET /posts Surrogate-Key %q", h.Get("Surrogate-Key"))
	}
	author := posts[0].Author.ID
	other := int64(7)
	for onPage(posts, other) {
		other++
	}
	authorPath, otherPath := "/users/"+strconv.FormatInt(author, 10), "/users/"+strconv.FormatInt(other, 10)

	code, h, body = call("GET", otherPath, "")
	userCC := regexp.MustCompile(`^public, max-age=10, s-maxage=(\d+), stale-while-revalidate=60$`)
	m := userCC.FindStringSubmatch(h.Get("Cache-Control"))
	if code != 200 || m == nil || h.Get("Etag") != `"1"` || h.Get("Surrogate-Key") != "user:"+strconv.FormatInt(other, 10) || h.Get("X-Cache") != "MISS" {
		t.Fatalf("GET %s: %d %s %v", otherPath, code, body, h)
	}
	if sm, _ := strconv.Atoi(m[1]); sm < 50 || sm > 60 {
		t.Fatalf("s-maxage %d: want what is left of the cache's 1m TTL (less jitter)", sm)
	}
	cached(authorPath)
	for _, p := range []string{otherPath, authorPath, "/posts?limit=5"} {
		if got := cached(p); got != "HIT" {
			t.Fatalf("GET %s again: %s, want HIT", p, got)
		}
	}
	if code, h, body := call("GET", otherPath, "", "If-None-Match", `"1"`); code != 304 || body != "" || h.Get("Etag") != `"1"` {
		t.Fatalf("revalidation of %s: %d %q %v", otherPath, code, body, h)
	}

	// Optimistic concurrency: a stale If-Match is refused, the current one
	// writes; the write purges user:<author> through its queued job.
	put := `{"name":"Grace Hopper","email":"grace@example.com"}`
	if code, _, body := call("PUT", authorPath, put, "If-Match", `"7"`); code != 412 {
		t.Fatalf("PUT with a stale If-Match: %d %s", code, body)
	}
	code, h, body = call("PUT", authorPath, put, "If-Match", `"1"`)
	if code != 200 || h.Get("Etag") != `"2"` {
		t.Fatalf("PUT: %d %s %v", code, body, h)
	}
	pg.WaitReplicaCaughtUp()
	eventually(t, 60*time.Second, "the edge to serve the new name (the purge job ran)", func() bool {
		_, h, body := call("GET", authorPath, "")
		return strings.Contains(body, "Grace Hopper") && h.Get("Etag") == `"2"`
	})
	if _, h, body := call("GET", "/posts?limit=5", ""); h.Get("X-Cache") != "MISS" || !strings.Contains(body, "Grace Hopper") {
		t.Fatalf("the posts page after the purge: %s %.200s", h.Get("X-Cache"), body)
	}
	if got := cached(otherPath); got != "HIT" {
		t.Fatalf("%s after purging user:%d: %s, want HIT (another key)", otherPath, author, got)
	}
}

func onPage(posts []Post, user int64) bool {
	for _, p := range posts {
		if p.Author.ID == user {
			return true
		}
	}
	return false
}
