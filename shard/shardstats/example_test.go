package shardstats_test

import (
	"fmt"

	"github.com/scalekit-go/scalekit/shard/shardstats"
)

// A collector reads a shard.Router's Stats without importing shard (or
// dbrouter and pgx).
func Example() {
	st := shardstats.Stats{VirtualShards: 1024, Clusters: 2, MapVersion: 3, MapSwaps: 2}
	fmt.Println(st.MapVersion, st.MapSwaps, st.MapRefused)
	// Output:
	// 3 2 0
}
