package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/poll"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, e := range []envelope{
		{fresh: 1_800_000_000_123_456_000, hard: 1_800_000_060_000_000_000, load: 12_345_000, version: 7, value: []byte(`{"a":1}`)},
		{negative: true, fresh: 5_000, hard: 5_000},
		{value: []byte{}},
	} {
		got, err := decodeEnvelope(e.encode())
		if err != nil {
			t.Fatal(err)
		}
		if got.negative != e.negative || got.fresh != e.fresh || got.hard != e.hard || got.load != e.load || got.version != e.version || !bytes.Equal(got.value, e.value) {
			t.Fatalf("round trip %+v -> %+v", e, got)
		}
	}
	for _, bad := range [][]byte{nil, {}, {9, 0}, {envelopeV1}, {envelopeV1, 0, 0xff}, {envelopeV1, 0, 1, 2, 3},
		{envelopeV1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 1, 1, 1},       // overflows 64 bits
		{envelopeV1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 1, 1, 1, 1}, // 11 bytes
	} {
		if _, err := decodeEnvelope(bad); !errors.Is(err, errEnvelope) {
			t.Errorf("decode(%v) = %v, want errEnvelope", bad, err)
		}
	}
}

func TestRawCodec(t *testing.T) {
	c, err := New[[]byte](Options{Store: NewMemoryStore(MemoryStoreOptions{}), Codec: Raw{}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	bin := []byte{0, 1, 0xfe}
	if err := c.Set(ctx, "k", bin); err != nil {
		t.Fatal(err)
	}
	// A second instance reads the raw bytes from the Store.
	d, err := New[[]byte](Options{Store: c.store, Codec: Raw{}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, err := d.Get(ctx, "k", func(context.Context, string) ([]byte, error) { return nil, errors.New("must not load") })
	if err != nil || !bytes.Equal(got, bin) {
		t.Fatalf("Get = %v, %v", got, err)
	}
	if _, err := (Raw{}).Marshal(42); err == nil {
		t.Fatal("Raw accepted an int")
	}
}

// Garbage in the Store (another program's key, an old format) is a miss:
// counted, logged, loaded again and overwritten; a value the codec cannot
// encode stays in L1 only.
func TestStoreRecordsThatDoNotDecode(t *testing.T) {
	store := NewMemoryStore(MemoryStoreOptions{})
	c, err := New[string](Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := store.Set(ctx, "k", []byte("not an envelope"), time.Minute); err != nil {
		t.Fatal(err)
	}
	v, err := c.Get(ctx, "k", func(context.Context, string) (string, error) { return "loaded", nil })
	if err != nil || v != "loaded" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if st := c.Stats(); st.CodecErrors == 0 || st.Loads != 1 || st.LeasesWon != 1 {
		t.Fatalf("stats %+v", st)
	}
	recs, _ := store.Get(ctx, []string{"k"})
	if _, err := decodeEnvelope(recs[0]); err != nil {
		t.Fatalf("the load did not overwrite the bad record: %v", err)
	}

	fc, err := New[func()](Options{Store: store}) // JSON cannot encode a func
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	if err := fc.Set(ctx, "f", func() {}); err == nil {
		t.Fatal("Set of an unencodable value returned no error")
	}
	if _, err := fc.Get(ctx, "g", func(context.Context, string) (func(), error) { return func() {}, nil }); err != nil {
		t.Fatalf("a value the codec cannot encode is still served: %v", err)
	}
	if _, err := fc.Get(ctx, "g", func(context.Context, string) (func(), error) { return nil, errors.New("loaded twice") }); err != nil {
		t.Fatalf("second Get: %v, want the L1 copy", err)
	}
}

// Three instances over one store, hammered with every operation at once:
// no errors, no value that was never written, under -race.
func TestHammerInstances(t *testing.T) {
	store := NewMemoryStore(MemoryStoreOptions{})
	var caches []*Cache[string]
	for i := 0; i < 3; i++ {
		c, err := New[string](Options{Store: store, TTL: 20 * time.Millisecond, StaleFor: 20 * time.Millisecond, LeaseTTL: 50 * time.Millisecond, MaxConcurrentLoads: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		caches = append(caches, c)
	}
	load := func(ctx context.Context, key string) (string, error) {
		if rand.IntN(20) == 0 {
			return "", ErrNotFound
		}
		return "L" + key, nil
	}
	batch := func(ctx context.Context, keys []string) (map[string]string, error) {
		m := map[string]string{}
		for _, k := range keys {
			m[k] = "L" + k
		}
		return m, nil
	}
	var bad atomic.Int64
	var firstBad atomic.Value
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 24; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := caches[g%3]
			ns := c.Namespace("ns")
			for i := 0; i < 300; i++ {
				k := fmt.Sprint(rand.IntN(30))
				switch op := rand.IntN(10); {
				case op < 5:
					v, err := c.Get(ctx, k, load)
					if err == nil && v != "L"+k && v != "S"+k || err != nil && !errors.Is(err, ErrNotFound) {
						bad.Add(1)
						firstBad.CompareAndSwap(nil, fmt.Sprintf("Get(%s) = %q, %v", k, v, err))
					}
				case op == 5:
					_ = c.Set(ctx, k, "S"+k)
				case op == 6:
					_ = c.Delete(ctx, k)
				case op == 7:
					m, err := c.GetMany(ctx, []string{k, "x" + k, "y" + k}, batch)
					v, ok := m[k]
					if err != nil || m["x"+k] != "Lx"+k || m["y"+k] != "Ly"+k || ok && v != "L"+k && v != "S"+k {
						bad.Add(1)
						firstBad.CompareAndSwap(nil, fmt.Sprintf("GetMany = %v, %v", m, err))
					}
				case op == 8:
					if v, err := ns.Get(ctx, k, load); err == nil && v != "L"+k || err != nil && !errors.Is(err, ErrNotFound) {
						bad.Add(1)
						firstBad.CompareAndSwap(nil, fmt.Sprintf("ns.Get(%s) = %q, %v", k, v, err))
					}
				default:
					_ = ns.Invalidate(ctx)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d bad results; first: %v", bad.Load(), firstBad.Load())
	}
}

// Regression: a miss served a stale Store value whose refresh lease is
// held elsewhere has no L1 entry to mark for back-off (it crashed with a
// nil pointer).
func TestMissServedStaleWhileAnotherRefreshes(t *testing.T) {
	store := NewMemoryStore(MemoryStoreOptions{})
	ctx := context.Background()
	a, _ := New[string](Options{Store: store, TTL: 10 * time.Millisecond, StaleFor: time.Hour, NoJitter: true, NoEarlyRefresh: true})
	defer a.Close()
	if err := a.Set(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // stale in the Store now
	if toks, err := store.Lease(ctx, []string{"k"}, time.Minute); err != nil || toks[0] == "" {
		t.Fatalf("another instance's lease: %v %v", toks, err)
	}
	b, _ := New[string](Options{Store: store, TTL: 10 * time.Millisecond, StaleFor: time.Hour, NoJitter: true, NoEarlyRefresh: true})
	defer b.Close()
	v, err := b.Get(ctx, "k", func(context.Context, string) (string, error) { return "", errors.New("must not load") })
	if err != nil || v != "old" {
		t.Fatalf("Get = %q, %v; want the stale value while the other instance refreshes", v, err)
	}
	time.Sleep(20 * time.Millisecond) // the background part finishes without crashing
	if st := b.Stats(); st.LeaseBusy != 1 || st.StaleServed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// GetMany serves a miss a stale Store value at once while the refresh is
// left to the instance holding the lease, as Get does (it used to wait
// for a load of its own).
func TestGetManyMissServedStaleWhileAnotherRefreshes(t *testing.T) {
	store := NewMemoryStore(MemoryStoreOptions{})
	ctx := context.Background()
	o := Options{Store: store, TTL: 10 * time.Millisecond, StaleFor: time.Hour, NoJitter: true, NoEarlyRefresh: true}
	a := newCache(t, o)
	if err := a.Set(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // stale in the Store now
	if toks, err := store.Lease(ctx, []string{"k"}, time.Minute); err != nil || toks[0] == "" {
		t.Fatalf("another instance's lease: %v %v", toks, err)
	}
	b := newCache(t, o)
	got, err := b.GetMany(ctx, []string{"k"}, func(context.Context, []string) (map[string]string, error) {
		return nil, errors.New("must not load")
	})
	if err != nil || got["k"] != "old" {
		t.Fatalf("GetMany = %v, %v; want the stale value while the other instance refreshes", got, err)
	}
	poll.Until(t, 5*time.Second, "the background part leaves the key to the lease holder", func() bool { return b.Stats().LeaseBusy == 1 })
	if st := b.Stats(); st.StaleServed != 1 || st.Loads != 0 {
		t.Fatalf("stats %+v", st)
	}
}
