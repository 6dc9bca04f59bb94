// Package redisx holds what the Redis engines of this module share.
package redisx

import (
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// CheckClientTimeouts refuses a client that would make a paused Redis cost
// every call far more than timeout: go-redis ignores ctx deadlines on the
// socket unless ContextTimeoutEnabled is set, and waits for its
// ReadTimeout (3s by default) instead. A client whose ReadTimeout is at
// most timeout is accepted as it is; a UniversalClient of another type
// (a wrapper) is trusted.
func CheckClientTimeouts(c redis.UniversalClient, timeout time.Duration) error {
	var enabled bool
	var read time.Duration
	switch c := c.(type) {
	case *redis.Client:
		enabled, read = c.Options().ContextTimeoutEnabled, c.Options().ReadTimeout
	case *redis.ClusterClient:
		enabled, read = c.Options().ContextTimeoutEnabled, c.Options().ReadTimeout
	case *redis.Ring:
		enabled, read = c.Options().ContextTimeoutEnabled, c.Options().ReadTimeout
	default:
		return nil
	}
	if enabled || (read > 0 && read <= timeout) {
		return nil
	}
	rt := "none"
	if read >= 0 {
		rt = read.String()
	}
	return fmt.Errorf("ContextTimeoutEnabled is false, so a slow or paused Redis would hold every call for the client's ReadTimeout (%s) instead of %v; set ContextTimeoutEnabled: true in the client's options", rt, timeout)
}

// Slot is the Redis Cluster hash slot of key (0-16383): CRC16 (XMODEM) of
// its hash tag, the part between the first "{" and the next "}" when that
// part is not empty, else of the whole key, modulo 16384. Keys of one slot
// may share a script or a multi-key command on a Cluster.
func Slot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
