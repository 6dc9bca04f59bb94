package httpcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestKeysOptionsInvalid(t *testing.T) {
	for _, c := range []struct {
		o     KeysOptions
		field string
	}{
		{KeysOptions{Header: "Bad Header"}, "Header"},
		{KeysOptions{Separator: ";"}, "Separator"},
		{KeysOptions{MaxBytes: 10}, "MaxBytes"},
		{KeysOptions{MaxBytes: 2 << 20}, "MaxBytes"},
	} {
		if _, err := NewKeys(c.o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("NewKeys(%+v) = %v, want ErrInvalid naming %s", c.o, err, c.field)
		}
	}
}

func serveKeys(t *testing.T, o KeysOptions, h http.HandlerFunc) (*Keys, *http.Response) {
	t.Helper()
	k, err := NewKeys(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(k.Middleware(h))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return k, resp
}

func TestKeysMiddleware(t *testing.T) {
	for _, c := range []struct {
		name string
		o    KeysOptions
		h    http.HandlerFunc
		hdr  string
		want string
	}{
		{"surrogate-key, dedup, first-added order", KeysOptions{}, func(w http.ResponseWriter, r *http.Request) {
			AddKeys(r.Context(), "user:1", "posts")
			AddKeys(r.Context(), "posts", "user:2")
			io.WriteString(w, "ok")
		}, "Surrogate-Key", "user:1 posts user:2"},
		{"cache-tag uses commas", KeysOptions{Header: "cache-tag"}, func(w http.ResponseWriter, r *http.Request) {
			AddKeys(r.Context(), "a", "b")
			w.WriteHeader(200)
		}, "Cache-Tag", "a,b"},
		{"xkey", KeysOptions{Header: "xkey"}, func(w http.ResponseWriter, r *http.Request) {
			AddKeys(r.Context(), "a", "b")
			io.WriteString(w, "x")
		}, "Xkey", "a b"},
		{"implicit 200 with no write", KeysOptions{}, func(w http.ResponseWriter, r *http.Request) {
			AddKeys(r.Context(), "k")
		}, "Surrogate-Key", "k"},
		{"handler's own keys kept", KeysOptions{}, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Surrogate-Key", "own")
			AddKeys(r.Context(), "added")
			io.WriteString(w, "x")
		}, "Surrogate-Key", "own added"},
		{"added after the header: lost", KeysOptions{}, func(w http.ResponseWriter, r *http.Request) {
			AddKeys(r.Context(), "early")
			w.WriteHeader(200)
			AddKeys(r.Context(), "late")
		}, "Surrogate-Key", "early"},
		{"no keys, no field", KeysOptions{}, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") }, "Surrogate-Key", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, resp := serveKeys(t, c.o, c.h)
			if got := strings.Join(resp.Header.Values(c.hdr), "|"); got != c.want {
				t.Fatalf("%s: %q, want %q", c.hdr, got, c.want)
			}
		})
	}
}

func TestKeysMaxBytes(t *testing.T) {
	k, resp := serveKeys(t, KeysOptions{MaxBytes: 64}, func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 20; i++ {
			AddKeys(r.Context(), fmt.Sprintf("key:%03d", i)) // 7 bytes + separator
		}
		io.WriteString(w, "x")
	})
	got := resp.Header.Get("Surrogate-Key")
	if len(got) > 64 || len(strings.Fields(got)) != 8 {
		t.Fatalf("Surrogate-Key %q (%d bytes): want the 8 keys that fit in 64", got, len(got))
	}
	if st := k.Stats(); st.Dropped != 12 || st.Keys != 8 || st.Tagged != 1 || st.Requests != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAddKeys(t *testing.T) {
	ctx := context.Background()
	if err := AddKeys(ctx, "fine"); err != nil || ContextKeys(ctx) != nil {
		t.Fatalf("without middleware: %v, %v", err, ContextKeys(ctx))
	}
	for _, bad := range []string{"", "has space", "a,b", "tab\t", strings.Repeat("x", 257), "é"} {
		if err := AddKeys(ctx, "ok", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("AddKeys(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

// TestAddKeysConcurrent: goroutines of one request tag it at once.
func TestAddKeysConcurrent(t *testing.T) {
	_, resp := serveKeys(t, KeysOptions{}, func(w http.ResponseWriter, r *http.Request) {
		var wg sync.WaitGroup
		for g := 0; g < 32; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					AddKeys(r.Context(), fmt.Sprintf("k%d", i), "shared")
					ContextKeys(r.Context())
				}
			}()
		}
		wg.Wait()
		io.WriteString(w, "x")
	})
	keys := strings.Fields(resp.Header.Get("Surrogate-Key"))
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Fatalf("key %q twice", k)
		}
		seen[k] = true
	}
	if len(keys) != 51 {
		t.Fatalf("%d keys, want 51", len(keys))
	}
}
