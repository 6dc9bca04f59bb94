package shard

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/scalekit-go/scalekit/dbrouter"
)

// stand-ins: routing never calls into a cluster's Router, so unit tests
// use distinct zero Routers as clusters (real ones are in real_test.go).
func fakeClusters(names ...string) map[string]*dbrouter.Router {
	cs := make(map[string]*dbrouter.Router, len(names))
	for _, n := range names {
		cs[n] = new(dbrouter.Router)
	}
	return cs
}

func mustNew(t testing.TB, o Options) *Router {
	t.Helper()
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The hash of a key is fixed forever: a change would move every row. The
// empty string's value is xxHash64's published test vector.
func TestHashPinned(t *testing.T) {
	for _, c := range []struct {
		name   string
		k      Key
		hash   uint64
		vshard int
	}{
		{"Int64(0)", Int64(0), 0x34c96acdcadb1bbb, 955},
		{"Int64(1)", Int64(1), 0x9f1ffc793b8a47da, 986},
		{"Int64(42)", Int64(42), 0xa2c396223f8bdbdf, 991},
		{"Int64(-1)", Int64(-1), 0x85d136adb773c6c9, 713},
		{"Int64(1<<40)", Int64(1 << 40), 0x210f2c43553cf450, 80},
		{`String("")`, String(""), 0xef46db3751d8e999, 409},
		{`String("acme")`, String("acme"), 0xbb189bfb846fec0c, 12},
		{`String("user@example.com")`, String("user@example.com"), 0xe92a4a9e39fe3d60, 352},
		{"UUID(nil)", UUID([16]byte{}), 0xaf09f71516247c32, 50},
		{"UUID(123e4567-e89b-12d3-a456-426614174000)", UUID([16]byte{0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00}), 0x48fba9d1f5d72644, 580},
	} {
		if got := c.k.Hash(); got != c.hash {
			t.Errorf("%s.Hash() = %#x, want %#x", c.name, got, c.hash)
		}
		if got := c.k.VShard(DefaultVirtualShards); got != c.vshard {
			t.Errorf("%s.VShard(1024) = %d, want %d", c.name, got, c.vshard)
		}
	}
	if String("\x00\x00\x00\x00\x00\x00\x00\x2a") != Int64(42) {
		t.Error("Int64 is not the hash of its 8 big-endian bytes")
	}
	if (Key{}).VShard(1024) != -1 || Int64(1).VShard(0) != -1 {
		t.Error("VShard of the zero Key or of n < 1 is not -1")
	}
}

// 100k keys of each kind over 1024 virtual shards and 3 clusters (one with
// half the virtual shards): each cluster's share of keys is within 1.5
// points of its share of virtual shards, and no virtual shard is far from
// the mean (sequential IDs included).
func TestUniform(t *testing.T) {
	m := EvenMap(1, 1024, "a", "b", "c", "c") // c holds half
	r := mustNew(t, Options{Map: m, Clusters: fakeClusters("a", "b", "c")})
	const n = 100_000
	kinds := map[string]func(i int) Key{
		"int64":  func(i int) Key { return Int64(int64(i)) },
		"string": func(i int) Key { return String("user-" + itoa(i)) },
		"uuid": func(i int) Key {
			var u [16]byte
			for j := range 8 {
				u[15-j] = byte(i >> (8 * j))
			}
			u[6] = 0x40 // version 4 bits, as real UUIDs have
			return UUID(u)
		},
	}
	want := m.Counts()
	for kind, key := range kinds {
		perCluster := map[string]int{}
		perVShard := make([]int, 1024)
		for i := range n {
			rt, err := r.For(key(i))
			if err != nil {
				t.Fatal(err)
			}
			perCluster[rt.Cluster]++
			perVShard[rt.VShard]++
		}
		for c, vs := range want {
			share, wantShare := float64(perCluster[c])/n, float64(vs)/1024
			if d := share - wantShare; d > 0.015 || d < -0.015 {
				t.Errorf("%s keys: cluster %s has %.4f of keys, holds %.4f of virtual shards", kind, c, share, wantShare)
			}
		}
		for v, c := range perVShard { // mean 97.7, sd ~9.9
			if c < 50 || c > 150 {
				t.Errorf("%s keys: virtual shard %d has %d keys, mean %.1f", kind, v, c, float64(n)/1024)
			}
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	p := len(b)
	for ; i > 0; i /= 10 {
		p--
		b[p] = byte('0' + i%10)
	}
	return string(b[p:])
}

// Routing is a pure function of the key and the map: stable across calls
// and across Routers built from equal options.
func TestForStable(t *testing.T) {
	o := Options{VirtualShards: 64, Map: EvenMap(3, 64, "x", "y"), Clusters: fakeClusters("x", "y")}
	r1, r2 := mustNew(t, o), mustNew(t, o)
	for i := range 1000 {
		k := Int64(int64(i))
		a, err1 := r1.For(k)
		b, err2 := r2.For(k)
		if err1 != nil || err2 != nil || a.Cluster != b.Cluster || a.VShard != b.VShard || a.VShard != k.VShard(64) || a.MapVersion != 3 {
			t.Fatalf("key %d: %+v %v / %+v %v", i, a, err1, b, err2)
		}
		if a.Router != o.Clusters[a.Cluster] {
			t.Fatalf("key %d: Route.Router is not cluster %s's", i, a.Cluster)
		}
		if want := o.Map.Assign[a.VShard]; a.Cluster != want {
			t.Fatalf("key %d on vshard %d went to %s, map says %s", i, a.VShard, a.Cluster, want)
		}
	}
}

func TestNoShardKey(t *testing.T) {
	r := mustNew(t, Options{Map: EvenMap(1, 1024, "a"), Clusters: fakeClusters("a")})
	if _, err := r.For(Key{}); !errors.Is(err, ErrNoShardKey) {
		t.Errorf("For(Key{}) = %v, want ErrNoShardKey", err)
	}
	if _, err := r.ForContext(context.Background()); !errors.Is(err, ErrNoShardKey) {
		t.Errorf("ForContext without key = %v, want ErrNoShardKey", err)
	}
	if _, err := r.ForContext(WithKey(context.Background(), Key{})); !errors.Is(err, ErrNoShardKey) {
		t.Errorf("ForContext with the zero Key = %v, want ErrNoShardKey", err)
	}
	ctx := WithKey(context.Background(), String("acme"))
	if k, ok := FromContext(ctx); !ok || k != String("acme") {
		t.Errorf("FromContext = %v, %v", k, ok)
	}
	rt, err := r.ForContext(ctx)
	if err != nil || rt.VShard != String("acme").VShard(1024) {
		t.Errorf("ForContext = %+v, %v", rt, err)
	}
	if got := r.Stats().NoShardKey; got != 3 {
		t.Errorf("Stats.NoShardKey = %d, want 3", got)
	}
}

func TestBadOptions(t *testing.T) {
	cs := fakeClusters("a", "b")
	withNil := fakeClusters("a")
	withNil["b"] = nil
	withEmpty := fakeClusters("a", "")
	holes := EvenMap(1, 8, "a", "b")
	holes.Assign[5] = ""
	unknown := EvenMap(1, 8, "a", "b")
	unknown.Assign[2] = "z"
	for _, c := range []struct {
		name string
		o    Options
		want string
	}{
		{"negative vshards", Options{VirtualShards: -1, Map: EvenMap(1, 8, "a"), Clusters: cs}, "Options.VirtualShards: -1"},
		{"too many vshards", Options{VirtualShards: MaxVirtualShards + 1, Map: EvenMap(1, 8, "a"), Clusters: cs}, "Options.VirtualShards"},
		{"no clusters", Options{Map: EvenMap(1, 1024, "a")}, "Options.Clusters: none given"},
		{"nil router", Options{VirtualShards: 8, Map: EvenMap(1, 8, "a"), Clusters: withNil}, `Options.Clusters["b"]: nil`},
		{"empty name", Options{VirtualShards: 8, Map: EvenMap(1, 8, "a"), Clusters: withEmpty}, "empty name"},
		{"no map", Options{Clusters: cs}, "Options.Map.Version: 0"},
		{"short map", Options{VirtualShards: 8, Map: EvenMap(1, 4, "a"), Clusters: cs}, "Options.Map.Assign: 4 entries, want one per virtual shard (8)"},
		{"default vshards, short map", Options{Map: EvenMap(1, 8, "a"), Clusters: cs}, "(1024)"},
		{"unassigned vshard", Options{VirtualShards: 8, Map: holes, Clusters: cs}, "Options.Map.Assign[5]: virtual shard 5 is not assigned"},
		{"unknown cluster", Options{VirtualShards: 8, Map: unknown, Clusters: cs}, `Options.Map.Assign[2]: cluster "z" is not in Options.Clusters`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := New(c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v, %v; want error containing %q", r, err, c.want)
			}
		})
	}
	// A cluster with no virtual shard is allowed (a spare, a move target).
	if _, err := New(Options{VirtualShards: 8, Map: EvenMap(1, 8, "a"), Clusters: cs}); err != nil {
		t.Fatal(err)
	}
}

// New copies its options: changing the caller's map or clusters later
// changes nothing.
func TestOptionsCopied(t *testing.T) {
	cs := fakeClusters("a", "b")
	m := EvenMap(1, 8, "a")
	r := mustNew(t, Options{VirtualShards: 8, Map: m, Clusters: cs})
	m.Assign[0] = "b"
	delete(cs, "a")
	rt, _ := r.For(Int64(0))
	if rt.Cluster != "a" || r.Map().Assign[0] != "a" {
		t.Fatalf("caller's edits leaked in: %+v", rt)
	}
	got := r.Map()
	got.Assign[1] = "b"
	if r.Map().Assign[1] != "a" {
		t.Fatal("Map() shares its slice with the Router")
	}
}

func TestSetMap(t *testing.T) {
	cs := fakeClusters("a", "b")
	r := mustNew(t, Options{VirtualShards: 8, Map: EvenMap(5, 8, "a"), Clusters: cs})
	for _, v := range []int64{5, 4} {
		err := r.SetMap(EvenMap(v, 8, "b"))
		var se *StaleMapError
		if !errors.Is(err, ErrStaleMap) || !errors.As(err, &se) || se.Installed != 5 || se.Offered != v {
			t.Fatalf("SetMap(version %d) = %v, want a StaleMapError", v, err)
		}
	}
	if err := r.SetMap(EvenMap(6, 4, "b")); err == nil || !strings.Contains(err.Error(), "map.Assign: 4 entries") {
		t.Fatalf("SetMap(short map) = %v", err)
	}
	bad := EvenMap(6, 8, "b")
	bad.Assign[7] = "c"
	if err := r.SetMap(bad); err == nil || !strings.Contains(err.Error(), `map.Assign[7]: cluster "c"`) {
		t.Fatalf("SetMap(unknown cluster) = %v", err)
	}
	if rt, _ := r.For(Int64(1)); rt.Cluster != "a" || rt.MapVersion != 5 {
		t.Fatalf("after refused maps: %+v", rt)
	}
	if err := r.SetMap(EvenMap(6, 8, "b")); err != nil {
		t.Fatal(err)
	}
	if rt, _ := r.For(Int64(1)); rt.Cluster != "b" || rt.MapVersion != 6 || rt.Router != cs["b"] {
		t.Fatalf("after SetMap: %+v", rt)
	}
	st := r.Stats()
	if st != (Stats{VirtualShards: 8, Clusters: 2, MapVersion: 6, MapSwaps: 1, MapRefused: 4}) {
		t.Fatalf("Stats = %+v", st)
	}
	if vs := r.VShards(); len(vs) != 2 || vs["a"] != 0 || vs["b"] != 8 {
		t.Fatalf("VShards = %v, want a:0 b:8 (a cluster holding none included)", vs)
	}
}

// 64 goroutines: half route keys, half install maps of rising versions
// (some refused as stale by a racing newer one). Every route must be the
// one its reported map version gives, versions seen by one goroutine never
// go back, and the newest map wins.
func TestHammer(t *testing.T) {
	const vs, maps = 64, 400
	names := []string{"a", "b", "c"}
	cs := fakeClusters(names...)
	all := make([]Map, maps+1)
	for v := 1; v <= maps; v++ {
		all[v] = Map{Version: int64(v), Assign: make([]string, vs)}
		for i := range vs {
			all[v].Assign[i] = names[(i*7+v)%3]
		}
	}
	r := mustNew(t, Options{VirtualShards: vs, Map: all[1], Clusters: cs})
	var next atomic.Int64
	next.Store(1)
	var wg sync.WaitGroup
	var stale atomic.Int64
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g%2 == 0 {
				for {
					v := next.Add(1)
					if v > maps {
						return
					}
					if err := r.SetMap(all[v]); errors.Is(err, ErrStaleMap) {
						stale.Add(1)
					} else if err != nil {
						t.Error(err)
						return
					}
				}
			}
			var last int64
			for i := range 5000 {
				rt, err := r.For(Int64(int64(i*64 + g)))
				if err != nil {
					t.Error(err)
					return
				}
				if rt.MapVersion < last {
					t.Errorf("map version went back from %d to %d", last, rt.MapVersion)
					return
				}
				last = rt.MapVersion
				if want := all[rt.MapVersion].Assign[rt.VShard]; rt.Cluster != want || rt.Router != cs[want] {
					t.Errorf("version %d vshard %d routed to %s, map says %s", rt.MapVersion, rt.VShard, rt.Cluster, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := r.Map().Version; got != maps {
		t.Fatalf("final map version %d, want %d", got, maps)
	}
	st := r.Stats()
	if st.MapSwaps+st.MapRefused != maps-1 || st.MapRefused != stale.Load() {
		t.Fatalf("Stats %+v, stale refusals seen %d", st, stale.Load())
	}
}

// For plus the routing decision allocates nothing.
func TestForAllocs(t *testing.T) {
	r := mustNew(t, Options{Map: EvenMap(1, 1024, "a", "b", "c"), Clusters: fakeClusters("a", "b", "c")})
	s := "tenant-42"
	var sink *dbrouter.Router
	var i int64
	for name, fn := range map[string]func(){
		"int64":  func() { i++; rt, _ := r.For(Int64(i)); sink = rt.Router },
		"string": func() { rt, _ := r.For(String(s)); sink = rt.Router },
		"uuid":   func() { rt, _ := r.For(UUID([16]byte{byte(i)})); sink = rt.Router },
	} {
		if a := testing.AllocsPerRun(1000, fn); a != 0 {
			t.Errorf("%s: %v allocs per For", name, a)
		}
	}
	_ = sink
}

func TestMapJSON(t *testing.T) {
	m := EvenMap(7, 10, "a", "b")
	m.Assign[3] = "b"
	data, err := m.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":7,"virtual_shards":10,"ranges":[{"first":0,"last":2,"cluster":"a"},{"first":3,"last":3,"cluster":"b"},{"first":4,"last":4,"cluster":"a"},{"first":5,"last":9,"cluster":"b"}]}`
	if string(data) != want {
		t.Fatalf("MarshalJSON = %s\nwant %s", data, want)
	}
	back, err := ParseMap(data)
	if err != nil || back.Version != 7 || strings.Join(back.Assign, ",") != strings.Join(m.Assign, ",") {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
	arr, err := ParseMap([]byte(`{"version":2,"assign":["a","b","a"]}`))
	if err != nil || arr.Version != 2 || strings.Join(arr.Assign, ",") != "a,b,a" {
		t.Fatalf("assign form = %+v, %v", arr, err)
	}
	path := filepath.Join(t.TempDir(), "map.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := LoadMap(path); err != nil || f.Version != 7 || len(f.Assign) != 10 {
		t.Fatalf("LoadMap = %+v, %v", f, err)
	}
	if _, err := LoadMap(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("LoadMap of a missing file succeeded")
	}
	for _, c := range []struct{ in, want string }{
		{`{"version":1,"virtual_shards":4,"ranges":[{"first":0,"last":2,"cluster":"a"},{"first":2,"last":3,"cluster":"b"}]}`, `ranges[1] assigns virtual shard 2 again (already on "a")`},
		{`{"version":1,"virtual_shards":4,"ranges":[{"first":0,"last":4,"cluster":"a"}]}`, "ranges[0] is 0..4"},
		{`{"version":1,"virtual_shards":4,"ranges":[{"first":0,"last":3}]}`, "ranges[0] has no cluster"},
		{`{"version":1,"ranges":[{"first":0,"last":3,"cluster":"a"}]}`, "virtual_shards is 0"},
		{`{"version":1,"virtual_shards":4,"assign":["a"],"ranges":[]}`, "either assign or ranges"},
		{`{"version":1,"assign":["a"],"virtual_shards":2}`, "virtual_shards is 2 but assign has 1"},
		{`{"version":1,"vshards":4}`, "unknown field"},
		{`{"version":`, "shard: map JSON"},
	} {
		if _, err := ParseMap([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseMap(%s) = %v, want error containing %q", c.in, err, c.want)
		}
	}
	// A map from a file with holes is refused by New, naming the entry.
	holes, err := ParseMap([]byte(`{"version":1,"virtual_shards":4,"ranges":[{"first":0,"last":2,"cluster":"a"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{VirtualShards: 4, Map: holes, Clusters: fakeClusters("a")}); err == nil || !strings.Contains(err.Error(), "Assign[3]") {
		t.Fatalf("New with a hole = %v", err)
	}
}

func TestEvenMap(t *testing.T) {
	m := EvenMap(1, 1024, "a", "b", "c")
	c := m.Counts()
	if c["a"]+c["b"]+c["c"] != 1024 || c["a"] < 341 || c["b"] < 341 || c["c"] < 341 {
		t.Fatalf("EvenMap counts %v", c)
	}
	if len(m.Ranges()) != 3 {
		t.Fatalf("EvenMap ranges %v, want 3 contiguous", m.Ranges())
	}
	if m := EvenMap(1, 0, "a"); m.Assign != nil {
		t.Fatal("EvenMap with 0 virtual shards")
	}
}
