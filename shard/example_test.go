package shard_test

import (
	"fmt"

	"github.com/scalekit-go/scalekit/shard"
)

// Keys hash to virtual shards, and the map assigns virtual shards to
// clusters. (A Router adds each cluster's dbrouter.Router on top.)
func Example() {
	m, err := shard.ParseMap([]byte(`{"version": 1, "virtual_shards": 1024, "ranges": [
		{"first": 0, "last": 511, "cluster": "a"},
		{"first": 512, "last": 1023, "cluster": "b"}]}`))
	if err != nil {
		panic(err)
	}
	for _, k := range []shard.Key{shard.Int64(42), shard.String("acme"), shard.UUID([16]byte{})} {
		v := k.VShard(1024)
		fmt.Println("vshard", v, "on cluster", m.Assign[v])
	}
	// Move the upper half of a's virtual shards to a new cluster c.
	next := m.Clone()
	next.Version = 2
	for v := 256; v < 512; v++ {
		next.Assign[v] = "c"
	}
	fmt.Println(next.Counts())
	// Output:
	// vshard 991 on cluster b
	// vshard 12 on cluster a
	// vshard 50 on cluster a
	// map[a:256 b:512 c:256]
}
