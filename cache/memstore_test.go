package cache_test

import (
	"testing"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/cache/cachetest"
)

func TestMemoryStoreConformance(t *testing.T) {
	s := cache.NewMemoryStore(cache.MemoryStoreOptions{})
	cachetest.RunStore(t, func(t *testing.T) cache.Store { return s })
}

func TestMemoryStoreInstances(t *testing.T) {
	s := cache.NewMemoryStore(cache.MemoryStoreOptions{})
	cachetest.RunCache(t, func(t *testing.T) cache.Store { return s })
}
