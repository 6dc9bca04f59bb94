package cachetest_test

import (
	"testing"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/cache/cachetest"
)

// A Store proves itself with two calls from its own tests: RunStore checks
// the Store contract (reads, fill leases, fencing, versions, pub/sub) and
// RunCache runs several cache instances over one Store (one load per key
// across the fleet, invalidations reaching every L1). In your Store's
// _test.go:
//
//	func TestStore(t *testing.T) { cachetest.RunStore(t, newStore) }
//	func TestCache(t *testing.T) { cachetest.RunCache(t, newStore) }
func Example() {
	var t *testing.T // the *testing.T of your TestXxx function
	newStore := func(t *testing.T) cache.Store { return cache.NewMemoryStore(cache.MemoryStoreOptions{}) }
	cachetest.RunStore(t, newStore)
	cachetest.RunCache(t, newStore)
}
