// Package cachetest is the conformance suite for cache.Store
// implementations (RunStore) and for caches sharing a store across
// instances (RunCache). Every Store of this module passes both: the
// in-process MemoryStore and cacheredis on Redis standalone and Cluster.
package cachetest

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/cache"
)

// StoreFactory returns the Store under test. It is called once per
// subtest; keys are unique per subtest, so a factory may return stores
// over one shared backend. TTLs are real time.
type StoreFactory func(t *testing.T) cache.Store

// Key is a key unique to this test and run.
func Key(t testing.TB, name string) string {
	return t.Name() + "#" + strconv.FormatUint(rand.Uint64(), 36) + ":" + name
}

func get1(t *testing.T, s cache.Store, key string) []byte {
	t.Helper()
	got, err := s.Get(context.Background(), []string{key})
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if len(got) != 1 {
		t.Fatalf("Get of 1 key returned %d results", len(got))
	}
	return got[0]
}

func lease(t *testing.T, s cache.Store, key string, ttl time.Duration) string {
	t.Helper()
	toks, err := s.Lease(context.Background(), []string{key}, ttl)
	if err != nil {
		t.Fatalf("Lease(%q): %v", key, err)
	}
	if len(toks) != 1 {
		t.Fatalf("Lease of 1 key returned %d tokens", len(toks))
	}
	return toks[0]
}

func fill(t *testing.T, s cache.Store, key, token string, data []byte) bool {
	t.Helper()
	ok, err := s.Fill(context.Background(), []cache.Fill{{Key: key, Token: token, Data: data, TTL: time.Minute}})
	if err != nil {
		t.Fatalf("Fill(%q): %v", key, err)
	}
	if len(ok) != 1 {
		t.Fatalf("Fill of 1 key returned %d results", len(ok))
	}
	return ok[0]
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// RunStore runs the Store conformance suite as subtests of t.
func RunStore(t *testing.T, newStore StoreFactory) {
	ctx := context.Background()
	t.Run("GetManyInOrder", func(t *testing.T) {
		s := newStore(t)
		a, b, missing := Key(t, "a"), Key(t, "b"), Key(t, "missing")
		bin := []byte{0, 1, 2, 0xff, '{', '}', 0}
		must(t, s.Set(ctx, a, []byte("alpha"), time.Minute))
		must(t, s.Set(ctx, b, bin, time.Minute))
		got, err := s.Get(ctx, []string{b, missing, a, b})
		must(t, err)
		if len(got) != 4 || !bytes.Equal(got[0], bin) || got[1] != nil || string(got[2]) != "alpha" || !bytes.Equal(got[3], bin) {
			t.Fatalf("Get([b missing a b]) = %q, want [bin nil alpha bin]", got)
		}
		if got, err := s.Get(ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("Get(no keys) = %q, %v", got, err)
		}
	})
	t.Run("SetOverwritesAndDelete", func(t *testing.T) {
		s := newStore(t)
		a, b := Key(t, "a"), Key(t, "b")
		must(t, s.Set(ctx, a, []byte("1"), time.Minute))
		must(t, s.Set(ctx, a, []byte("2"), time.Minute))
		must(t, s.Set(ctx, b, []byte("3"), time.Minute))
		if got := get1(t, s, a); string(got) != "2" {
			t.Fatalf("after two Sets: %q, want 2", got)
		}
		must(t, s.Delete(ctx, a, b, Key(t, "never-set")))
		if get1(t, s, a) != nil || get1(t, s, b) != nil {
			t.Fatal("Delete left a key")
		}
	})
	t.Run("TTL", func(t *testing.T) {
		s := newStore(t)
		k := Key(t, "k")
		must(t, s.Set(ctx, k, []byte("v"), 60*time.Millisecond))
		if get1(t, s, k) == nil {
			t.Fatal("gone before its TTL")
		}
		time.Sleep(150 * time.Millisecond)
		if got := get1(t, s, k); got != nil {
			t.Fatalf("still there after its TTL: %q", got)
		}
	})
	t.Run("SpecialKeys", func(t *testing.T) {
		s := newStore(t)
		for _, name := range []string{"{tag}", "a}b{c", "spaces and üñí", ":"} {
			k := Key(t, name)
			must(t, s.Set(ctx, k, []byte(name), time.Minute))
			if got := get1(t, s, k); string(got) != name {
				t.Fatalf("key %q: %q", k, got)
			}
			tok := lease(t, s, k, time.Minute)
			if tok == "" || !fill(t, s, k, tok, []byte("filled")) {
				t.Fatalf("key %q: lease %q did not fill", k, tok)
			}
		}
	})
	t.Run("LeaseIsExclusive", func(t *testing.T) {
		s := newStore(t)
		k := Key(t, "k")
		var won atomic.Int32
		var tokens sync.Map
		var wg sync.WaitGroup
		for i := 0; i < 32; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				toks, err := s.Lease(ctx, []string{k}, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				tok := toks[0]
				if tok != "" {
					won.Add(1)
					tokens.Store(tok, true)
				}
			}()
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("%d of 32 concurrent Leases won, want exactly 1", won.Load())
		}
		var tok string
		tokens.Range(func(k, _ any) bool { tok = k.(string); return false })
		must(t, s.Release(ctx, k, "not-the-token"))
		if lease(t, s, k, time.Minute) != "" {
			t.Fatal("Release with a wrong token freed the lease")
		}
		must(t, s.Release(ctx, k, tok))
		if lease(t, s, k, time.Minute) == "" {
			t.Fatal("the lease was not free after its holder released it")
		}
	})
	t.Run("LeaseExpires", func(t *testing.T) {
		s := newStore(t)
		k := Key(t, "k")
		old := lease(t, s, k, 50*time.Millisecond)
		time.Sleep(120 * time.Millisecond)
		cur := lease(t, s, k, time.Minute)
		if old == "" || cur == "" || cur == old {
			t.Fatalf("tokens %q then %q: want a new lease once the first expired", old, cur)
		}
		if fill(t, s, k, old, []byte("late")) {
			t.Fatal("a fill with an expired lease's token was stored")
		}
		if !fill(t, s, k, cur, []byte("current")) || string(get1(t, s, k)) != "current" {
			t.Fatal("the current holder's fill was not stored")
		}
	})
	t.Run("GetOne", func(t *testing.T) {
		s := newStore(t)
		g, ok := s.(cache.OneGetter)
		if !ok {
			t.Skip("the Store does not implement cache.OneGetter")
		}
		k, missing := Key(t, "a"), Key(t, "missing")
		must(t, s.Set(ctx, k, []byte("v1"), time.Minute))
		if got, err := g.GetOne(ctx, k); err != nil || string(got) != "v1" {
			t.Fatalf("GetOne(present) = %q, %v; want \"v1\"", got, err)
		}
		if got, err := g.GetOne(ctx, missing); err != nil || got != nil {
			t.Fatalf("GetOne(missing) = %q, %v; want nil", got, err)
		}
		must(t, s.Delete(ctx, k))
		if got, err := g.GetOne(ctx, k); err != nil || got != nil {
			t.Fatalf("GetOne(deleted) = %q, %v; want nil", got, err)
		}
	})
	t.Run("RenewLeases", func(t *testing.T) {
		s := newStore(t)
		r, ok := s.(cache.LeaseRenewer)
		if !ok {
			t.Skip("the Store does not implement cache.LeaseRenewer")
		}
		k1, k2 := Key(t, "a"), Key(t, "b")
		toks, err := s.Lease(ctx, []string{k1, k2}, 100*time.Millisecond)
		must(t, err)
		held, err := r.RenewLeases(ctx, []string{k1, k2}, []string{toks[0], "not-the-token"}, time.Minute)
		must(t, err)
		if len(held) != 2 || !held[0] || held[1] {
			t.Fatalf("RenewLeases with the token and a wrong one = %v, want [true false]", held)
		}
		if one, err := r.RenewLeases(ctx, []string{k1}, []string{toks[0]}, time.Minute); err != nil || !one[0] {
			t.Fatalf("RenewLeases of one key = %v, %v", one, err)
		}
		time.Sleep(150 * time.Millisecond) // past the leases' first TTL
		if lease(t, s, k1, time.Minute) != "" {
			t.Fatal("a renewed lease expired at its first TTL")
		}
		if lease(t, s, k2, time.Minute) == "" {
			t.Fatal("a lease renewed with a wrong token did not expire")
		}
		if !fill(t, s, k1, toks[0], []byte("v")) {
			t.Fatal("the holder of a renewed lease cannot fill")
		}
	})
	t.Run("FillNeedsTheToken", func(t *testing.T) {
		s := newStore(t)
		k := Key(t, "k")
		if fill(t, s, k, "no-lease", []byte("x")) || get1(t, s, k) != nil {
			t.Fatal("Fill without a lease stored")
		}
		tok := lease(t, s, k, time.Minute)
		if fill(t, s, k, tok+"x", []byte("x")) || get1(t, s, k) != nil {
			t.Fatal("Fill with a wrong token stored")
		}
		if !fill(t, s, k, tok, []byte("v")) || string(get1(t, s, k)) != "v" {
			t.Fatal("Fill with the token did not store")
		}
		if fill(t, s, k, tok, []byte("again")) {
			t.Fatal("a second Fill with a released token stored")
		}
		if lease(t, s, k, time.Minute) == "" {
			t.Fatal("Fill did not release the lease")
		}
	})
	t.Run("ManyLeasesAndFills", func(t *testing.T) {
		s := newStore(t)
		a, b, c := Key(t, "a"), Key(t, "b"), Key(t, "c")
		held := lease(t, s, b, time.Minute)
		toks, err := s.Lease(ctx, []string{a, b, c}, time.Minute)
		must(t, err)
		if len(toks) != 3 || toks[0] == "" || toks[1] != "" || toks[2] == "" {
			t.Fatalf("Lease([a b c]) with b held = %q, want tokens for a and c only", toks)
		}
		ok, err := s.Fill(ctx, []cache.Fill{
			{Key: a, Token: toks[0], Data: []byte("A"), TTL: time.Minute},
			{Key: b, Token: "not-" + held, Data: []byte("B"), TTL: time.Minute},
			{Key: c, Token: toks[2], Data: []byte("C"), TTL: time.Minute},
		})
		must(t, err)
		if len(ok) != 3 || !ok[0] || ok[1] || !ok[2] {
			t.Fatalf("Fill = %v, want [true false true]", ok)
		}
		got, err := s.Get(ctx, []string{a, b, c})
		must(t, err)
		if string(got[0]) != "A" || got[1] != nil || string(got[2]) != "C" {
			t.Fatalf("after the fills: %q", got)
		}
	})
	t.Run("SetAndDeleteVoidFills", func(t *testing.T) {
		s := newStore(t)
		a, b := Key(t, "a"), Key(t, "b")
		ta, tb := lease(t, s, a, time.Minute), lease(t, s, b, time.Minute)
		must(t, s.Set(ctx, a, []byte("newer"), time.Minute))
		must(t, s.Delete(ctx, b))
		if fill(t, s, a, ta, []byte("stale")) || string(get1(t, s, a)) != "newer" {
			t.Fatal("a fill begun before a Set overwrote it")
		}
		if fill(t, s, b, tb, []byte("stale")) || get1(t, s, b) != nil {
			t.Fatal("a fill begun before a Delete brought the value back")
		}
	})
	t.Run("Versions", func(t *testing.T) {
		s := newStore(t)
		n, m := Key(t, "ns"), Key(t, "other")
		v, err := s.Version(ctx, n)
		must(t, err)
		if v <= 0 {
			t.Fatalf("new counter %d, want > 0 (a value no earlier incarnation used)", v)
		}
		if again, err := s.Version(ctx, n); err != nil || again != v {
			t.Fatalf("Version again = %d, %v; want %d", again, err, v)
		}
		if inc, err := s.Incr(ctx, n); err != nil || inc != v+1 {
			t.Fatalf("Incr = %d, %v; want %d", inc, err, v+1)
		}
		if cur, err := s.Version(ctx, n); err != nil || cur != v+1 {
			t.Fatalf("Version after Incr = %d, %v; want %d", cur, err, v+1)
		}
		if inc, err := s.Incr(ctx, m); err != nil || inc <= 1 {
			t.Fatalf("Incr of a new counter = %d, %v; want a fresh base + 1", inc, err)
		}
	})
	t.Run("PubSub", func(t *testing.T) {
		s := newStore(t)
		msg := Key(t, "msg")
		a, b := make(chan string, 16), make(chan string, 16)
		stopA, err := s.Subscribe(func(m string) { a <- m })
		must(t, err)
		defer stopA()
		stopB, err := s.Subscribe(func(m string) { b <- m })
		must(t, err)
		must(t, s.Publish(ctx, msg))
		for name, ch := range map[string]chan string{"a": a, "b": b} {
			if got := receive(t, ch, msg); got != msg {
				t.Fatalf("subscriber %s got %q, want %q", name, got, msg)
			}
		}
		stopB()
		must(t, s.Publish(ctx, msg+"2"))
		receive(t, a, msg+"2")
		time.Sleep(50 * time.Millisecond)
		select {
		case m := <-b:
			t.Fatalf("a stopped subscriber got %q", m)
		default:
		}
	})
}

// receive waits up to 5s for want on ch, skipping messages of other tests
// (a shared backend may carry them).
func receive(t *testing.T, ch chan string, want string) string {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m := <-ch:
			if m == want {
				return m
			}
		case <-timeout:
			t.Fatalf("no message %q within 5s", want)
			return ""
		}
	}
}
