package shard

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/scalekit-go/scalekit/dbrouter"
)

func mustToken(t testing.TB, s string) dbrouter.Token {
	t.Helper()
	tok, err := dbrouter.ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Floors survive the JSON form (both forms), maps without them (written
// before floors existed) still parse, zero floors are not written, and
// bad floors are refused naming the key.
func TestMapJSONFloors(t *testing.T) {
	m := EvenMap(3, 8, "a", "b")
	m.Floors = map[int]dbrouter.Token{5: mustToken(t, "0/3000148@1767225600123@1"), 2: {}}
	data, err := m.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":3,"virtual_shards":8,"ranges":[{"first":0,"last":3,"cluster":"a"},{"first":4,"last":7,"cluster":"b"}],"floors":{"5":"0/3000148@1767225600123@1"}}`
	if string(data) != want {
		t.Fatalf("MarshalJSON = %s\nwant %s", data, want)
	}
	back, err := ParseMap(data)
	if err != nil || len(back.Floors) != 1 || back.Floors[5] != m.Floors[5] {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
	arr, err := ParseMap([]byte(`{"version":2,"assign":["a","b"],"floors":{"1":"16/B374D848@0"}}`))
	if err != nil || arr.Floors[1].LSN != 0x16B374D848 || len(arr.Floors) != 1 {
		t.Fatalf("assign form with floors = %+v, %v", arr, err)
	}
	old, err := ParseMap([]byte(`{"version":7,"virtual_shards":2,"ranges":[{"first":0,"last":1,"cluster":"a"}]}`))
	if err != nil || old.Floors != nil || old.Version != 7 {
		t.Fatalf("a map without floors = %+v, %v", old, err)
	}
	if data, _ := old.MarshalJSON(); strings.Contains(string(data), "floors") {
		t.Fatalf("a map without floors writes %s", data)
	}
	for _, c := range []struct{ in, want string }{
		{`{"version":1,"virtual_shards":4,"ranges":[{"first":0,"last":3,"cluster":"a"}],"floors":{"4":"0/1@0"}}`, `floors key "4" is not a virtual shard, want 0..3`},
		{`{"version":1,"virtual_shards":4,"ranges":[{"first":0,"last":3,"cluster":"a"}],"floors":{"x":"0/1@0"}}`, `floors key "x"`},
		{`{"version":1,"assign":["a"],"floors":{"-1":"0/1@0"}}`, `floors key "-1"`},
		{`{"version":1,"assign":["a"],"floors":{"0":"nope"}}`, `floors["0"]`},
		{`{"version":1,"assign":["a"],"floors":{"0":""}}`, `floors["0"] is empty`},
	} {
		if _, err := ParseMap([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseMap(%s) = %v, want error containing %q", c.in, err, c.want)
		}
	}
}

// Clone shares no floors; For returns the floor of a moved virtual shard
// and zero for the others; SetMap refuses a floor of no virtual shard;
// a fan-out Target carries its cluster's floors merged.
func TestRouteFloor(t *testing.T) {
	cs := fakeClusters("a", "b")
	r := mustNew(t, Options{VirtualShards: 8, Map: EvenMap(1, 8, "a", "b"), Clusters: cs})
	k := Int64(42)
	v := k.VShard(8)
	if rt, _ := r.For(k); !rt.Floor().IsZero() {
		t.Fatalf("For without floors: %+v", rt.Floor())
	}
	lo, hi := mustToken(t, "0/100@0@1"), mustToken(t, "0/200@0@1")
	next := r.Map()
	next.Version++
	next.Assign[v] = "b"
	next.Floors = map[int]dbrouter.Token{v: hi}
	other := (v + 1) % 8
	next.Assign[other] = "b"
	next.Floors[other] = lo
	clone := next.Clone()
	clone.Floors[v] = dbrouter.Token{}
	if next.Floors[v] != hi {
		t.Fatal("Clone shares Floors")
	}
	bad := next.Clone()
	bad.Floors[8] = lo
	if err := r.SetMap(bad); err == nil || !strings.Contains(err.Error(), "map.Floors[8]: no such virtual shard, want 0..7") {
		t.Fatalf("SetMap(floor of vshard 8) = %v", err)
	}
	if err := r.SetMap(next); err != nil {
		t.Fatal(err)
	}
	rt, err := r.For(k)
	if err != nil || rt.Cluster != "b" || rt.Floor() != hi {
		t.Fatalf("For(moved) = %+v, %v", rt, err)
	}
	for i := range int64(200) {
		if rt, _ := r.For(Int64(i)); rt.VShard != v && rt.VShard != other && !rt.Floor().IsZero() {
			t.Fatalf("vshard %d has floor %v", rt.VShard, rt.Floor())
		}
	}
	if got := r.Map().Floors; len(got) != 2 || got[v] != hi {
		t.Fatalf("Map().Floors = %v", got)
	}
	var mu sync.Mutex
	var ts []Target
	err = r.Each(context.Background(), EachOptions{}, func(_ context.Context, tg Target) error {
		mu.Lock()
		defer mu.Unlock()
		ts = append(ts, tg)
		return nil
	})
	if err != nil || len(ts) != 2 {
		t.Fatalf("Each: %d targets, %v", len(ts), err)
	}
	for _, tg := range ts {
		if want := map[string]dbrouter.Token{"a": {}, "b": hi}[tg.Cluster]; tg.Floor() != want {
			t.Errorf("Target %s: Floor %v, want %v", tg.Cluster, tg.Floor(), want)
		}
	}
	// Route.Context: the zero floor leaves ctx as it is.
	ctx := context.Background()
	if rt, _ := r.For(Int64(1)); rt.Floor().IsZero() && rt.Context(ctx) != ctx {
		t.Fatal("Route.Context without floor or sessions changed ctx")
	}
}

// For stays allocation-free with floors installed.
func TestForAllocsWithFloors(t *testing.T) {
	m := EvenMap(1, 1024, "a", "b", "c")
	m.Floors = map[int]dbrouter.Token{}
	for v := range 1024 {
		if v%2 == 0 { // half the virtual shards moved
			m.Floors[v] = dbrouter.Token{LSN: dbrouter.LSN(v + 1), Timeline: 1}
		}
	}
	r := mustNew(t, Options{Map: m, Clusters: fakeClusters("a", "b", "c")})
	var sink dbrouter.Token
	var i int64
	if a := testing.AllocsPerRun(1000, func() { i++; rt, _ := r.For(Int64(i)); sink = sink.Merge(rt.Floor()) }); a != 0 {
		t.Errorf("%v allocs per For with floors", a)
	}
	if sink.IsZero() {
		t.Fatal("1000 keys met no floor") // half the vshards have one
	}
}
