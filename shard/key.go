package shard

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// DefaultVirtualShards is the number of virtual shards when
// Options.VirtualShards is 0.
const DefaultVirtualShards = 1024

// MaxVirtualShards is the largest Options.VirtualShards.
const MaxVirtualShards = 1 << 20

// Key is a shard key: the value whose hash picks a virtual shard. Build one
// with Int64, String or UUID. The zero Key is "no key": For returns
// ErrNoShardKey for it.
//
// The hash is fixed forever, because a change would move every row: it is
// xxHash64 (seed 0, github.com/cespare/xxhash/v2) of the key's bytes, which
// are the 8 big-endian bytes of an int64, the UTF-8 bytes of a string, and
// the 16 bytes of a UUID. The virtual shard is that hash modulo the number
// of virtual shards. An int64 and an 8-byte string with the same bytes land
// on the same virtual shard.
type Key struct {
	h   uint64
	set bool
}

// Int64 is the shard key of an integer ID.
func Int64(v int64) Key {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return Key{h: xxhash.Sum64(b[:]), set: true}
}

// String is the shard key of a string ID (a tenant slug, an email).
func String(s string) Key { return Key{h: xxhash.Sum64String(s), set: true} }

// UUID is the shard key of a UUID in its 16-byte form. UUID types of the
// common libraries (github.com/google/uuid, pgtype.UUID's Bytes) convert
// to [16]byte.
func UUID(u [16]byte) Key { return Key{h: xxhash.Sum64(u[:]), set: true} }

// IsZero reports whether k is the zero Key (no shard key).
func (k Key) IsZero() bool { return !k.set }

// Hash returns the key's xxHash64, the value that picks its virtual shard.
func (k Key) Hash() uint64 { return k.h }

// VShard returns the key's virtual shard among n (n >= 1), in [0, n), or
// -1 for the zero Key or n < 1.
func (k Key) VShard(n int) int {
	if !k.set || n < 1 {
		return -1
	}
	return int(k.h % uint64(n))
}
