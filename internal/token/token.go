// Package token makes the random tokens that fence leases (cache fills,
// concurrency slots, idempotency keys, queue jobs): 128 bits, so two
// holders never draw the same one.
package token

import (
	"math/rand/v2"
	"strconv"
)

// New returns a new random token.
func New() string {
	return strconv.FormatUint(rand.Uint64(), 36) + "." + strconv.FormatUint(rand.Uint64(), 36)
}
