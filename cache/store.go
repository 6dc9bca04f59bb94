package cache

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Store is the shared second tier (L2) under every instance's in-process
// L1: cacheredis implements it on Redis (standalone or Cluster),
// MemoryStore in process. Values arrive encoded (an envelope carrying the
// value and its timing), so a Store only keeps bytes. The fill lease is
// what keeps a fleet from stampeding: on a miss one instance takes the
// key's lease and loads, the others wait for its fill. Every method may be
// called concurrently. cachetest is the conformance suite.
type Store interface {
	// Get returns the data stored for each key, nil where a key is missing
	// or expired, in one round trip where the engine allows.
	Get(ctx context.Context, keys []string) ([][]byte, error)
	// Set stores data for key for ttl, whatever is there, and voids key's
	// fill lease, so a fill that began before this Set is refused.
	Set(ctx context.Context, key string, data []byte, ttl time.Duration) error
	// Delete removes keys and voids their fill leases.
	Delete(ctx context.Context, keys ...string) error
	// Lease tries to take the fill lease of each key for ttl, in one round
	// trip where the engine allows, and returns a token per key: "" where
	// another holder has the lease.
	Lease(ctx context.Context, keys []string, ttl time.Duration) (tokens []string, err error)
	// Fill stores each fill's data for its TTL only if its token still
	// holds the key's lease, and releases the lease; it reports per fill
	// whether it stored.
	Fill(ctx context.Context, fills []Fill) (stored []bool, err error)
	// Release gives key's lease back if token holds it (a load failed).
	Release(ctx context.Context, key, token string) error
	// Version returns counter name, creating it when missing with a value
	// no earlier incarnation of it used (so a counter lost to eviction or
	// a restart never brings back old versioned keys).
	Version(ctx context.Context, name string) (int64, error)
	// Incr adds one to counter name (creating it as Version would first)
	// and returns the new value.
	Incr(ctx context.Context, name string) (int64, error)
	// Publish sends msg to every subscriber of the store, this instance's
	// included.
	Publish(ctx context.Context, msg string) error
	// Subscribe calls fn with every message published from now on until
	// stop is called. Messages sent while a subscriber is disconnected may
	// be lost.
	Subscribe(fn func(msg string)) (stop func(), err error)
}

// LeaseRenewer is implemented by a Store that can extend fill leases
// while their holder loads (cacheredis.Store and MemoryStore do). The
// cache finds it by type assertion: with it, a load slower than LeaseTTL
// keeps its lease (renewed every LeaseTTL/3) and fills, and the other
// instances wait for that fill instead of taking the lease over and
// running the same slow load again. Without it a lease lasts LeaseTTL.
type LeaseRenewer interface {
	// RenewLeases extends, for ttl from now, the lease of each key that
	// its token still holds, in one round trip where the engine allows,
	// and reports per key whether the token held it.
	RenewLeases(ctx context.Context, keys, tokens []string, ttl time.Duration) (held []bool, err error)
}

// OneGetter is implemented by a Store that reads a single key more
// cheaply than Get of a one-key slice (cacheredis.Store and MemoryStore
// do). The cache finds it by type assertion and uses it for a Get that
// misses its L1: no slice in, no slice out. Without it the cache calls Get
// with one key.
type OneGetter interface {
	// GetOne returns the data stored for key, nil when it is missing or
	// expired: Get of one key.
	GetOne(ctx context.Context, key string) ([]byte, error)
}

// ReconnectSubscriber is implemented by a Store whose subscription may
// lose messages while it reconnects and that can tell when it has
// reconnected (cacheredis.Store does). The cache finds it by type
// assertion and, on every reconnect, drops its whole L1 and rereads its
// namespace versions: an invalidation published while the subscription
// was down cannot leave an old copy behind. Without it, a lost message
// leaves an L1 copy for at most L1TTL.
type ReconnectSubscriber interface {
	// SubscribeReconnects is Subscribe that also calls reconnected, on the
	// subscription's goroutine, each time the subscription is established
	// again after losing its connection (not for the first time).
	SubscribeReconnects(fn func(msg string), reconnected func()) (stop func(), err error)
}

// Tracker is implemented by a Store that can make its server invalidate
// the L1 copies itself (cacheredis.Store with Options.Tracking, Redis
// CLIENT TRACKING). The cache finds it by type assertion and, when
// Tracking reports true, subscribes with SubscribeTracking: every change
// of a key in the Store, whoever makes it (this cache, another instance,
// another program; an expiry, an eviction), arrives as the message
// "|k|<key>", a namespace's version counter as "|n|<name>". Set and
// Delete then publish no message of their own (the Store write is the
// message) and, unless Options.L1TTL is set, an L1 copy is trusted for
// its whole freshness (L1TTL = TTL). While the feed is lost the cache
// drops its L1 and keeps new copies for the L1TTL it would have without
// tracking (TTL/10 by default); when the feed is back it drops them too.
type Tracker interface {
	// Tracking reports whether SubscribeTracking carries the server's
	// invalidations.
	Tracking() bool
	// SubscribeTracking is Subscribe carrying the server's invalidations
	// too; it also calls lost when the feed is lost (changes may go
	// unseen from then on) and back when it holds again, on the
	// subscription's goroutine.
	SubscribeTracking(fn func(msg string), lost, back func()) (stop func(), err error)
}

// Fill is one token-fenced write of Store.Fill.
type Fill struct {
	Key, Token string
	Data       []byte
	TTL        time.Duration
}

// Codec turns values into L2 bytes and back. JSON is the default.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default Codec: encoding/json. With it, a Cache whose V is
// flat (a string, bool or number type, or a struct of such fields with no
// custom decoding, embedded field or ",string" option) decodes a Store
// value written in json.Marshal's shape without encoding/json's scanner
// (several times cheaper), to the value json.Unmarshal would give; any
// other bytes go through Unmarshal. The stored bytes are JSON either way.
type JSON struct{}

// Marshal is json.Marshal.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal is json.Unmarshal.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Raw is a Codec for string and []byte values that stores them as they
// are, skipping any encoding.
type Raw struct{}

// Marshal returns the bytes of a string, []byte, *string or *[]byte.
func (Raw) Marshal(v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case []byte:
		return v, nil
	case *string:
		return []byte(*v), nil
	case *[]byte:
		return *v, nil
	}
	return nil, fmt.Errorf("cache: Raw codec holds string or []byte values, not %T", v)
}

// Unmarshal stores data into a *string or *[]byte.
func (Raw) Unmarshal(data []byte, v any) error {
	switch v := v.(type) {
	case *string:
		*v = string(data)
	case *[]byte:
		*v = append([]byte(nil), data...)
	default:
		return fmt.Errorf("cache: Raw codec decodes into *string or *[]byte, not %T", v)
	}
	return nil
}

// The envelope is what the L2 stores for a key: a format byte, a flags
// byte, then uvarints: fresh-until and servable-until (Unix µs), the
// measured load time (µs) and the namespace version the value was written
// under; then the encoded value. A negative entry (a remembered
// ErrNotFound) has no value.
const envelopeV1 = 1

const flagNegative = 1

type envelope struct {
	negative    bool
	fresh, hard int64 // Unix ns
	load        int64 // ns
	version     int64
	value       []byte
}

func (e *envelope) encode() []byte {
	b := make([]byte, 0, 2+4*binary.MaxVarintLen64+len(e.value))
	var flags byte
	if e.negative {
		flags |= flagNegative
	}
	b = append(b, envelopeV1, flags)
	b = binary.AppendUvarint(b, uint64(e.fresh/1e3))
	b = binary.AppendUvarint(b, uint64(e.hard/1e3))
	b = binary.AppendUvarint(b, uint64(max(0, e.load)/1e3))
	b = binary.AppendUvarint(b, uint64(max(0, e.version)))
	return append(b, e.value...)
}

var errEnvelope = errors.New("cache: L2 record is not a cache envelope")

func decodeEnvelope(b []byte) (envelope, error) {
	var e envelope
	if len(b) < 2 || b[0] != envelopeV1 {
		return e, errEnvelope
	}
	e.negative = b[1]&flagNegative != 0
	b = b[2:]
	var vals [4]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return e, errEnvelope
		}
		vals[i], b = v, b[n:]
	}
	e.fresh, e.hard, e.load, e.version = int64(vals[0])*1e3, int64(vals[1])*1e3, int64(vals[2])*1e3, int64(vals[3])
	e.value = b
	return e, nil
}

// ttlUntil is the store TTL for a record servable until hard (Unix ns),
// at least 1ms.
func ttlUntil(hard, now int64) time.Duration {
	return max(time.Millisecond, time.Duration(hard-now))
}
