package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unsafe"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/internal/renew"
)

// l2 calls the Store through the circuit, counting failures. A caller's
// own cancellation is neither counted nor held against the Store.
func (c *Cache[V]) l2(ctx context.Context, fn func(ctx context.Context) error) error {
	err := c.br.Do(ctx, fn)
	switch {
	case err == nil:
	case errors.Is(err, breaker.ErrOpen):
		c.st.l2Skipped.Add(1)
	case ctx.Err() == nil:
		c.st.l2Errors.Add(1)
		c.o.Logger.LogAttrs(ctx, slog.LevelDebug, "cache: the Store failed", slog.Any("error", err))
	}
	return err
}

// storeGet reads keys from the Store and decodes them; an entry is nil
// for a missing key or one that cannot be decoded.
func (c *Cache[V]) storeGet(ctx context.Context, keys []string) ([]*entry[V], error) {
	recs, err := c.storeRead(ctx, keys)
	if err != nil {
		return nil, err
	}
	now := c.now()
	out := make([]*entry[V], len(keys))
	for i, rec := range recs {
		out[i] = c.storeEntry(ctx, keys[i], rec, now)
	}
	return out, nil
}

// storeGetOne is storeGet of one key, without the slices: through the
// Store's GetOne when it has one (OneGetter). now is when the Store
// answered.
func (c *Cache[V]) storeGetOne(ctx context.Context, key string) (e *entry[V], now int64, err error) {
	var rec []byte
	if c.one == nil {
		recs, err := c.storeRead(ctx, []string{key})
		if err != nil {
			return nil, 0, err
		}
		rec = recs[0]
	} else if err := c.l2(ctx, func(ctx context.Context) (err error) { rec, err = c.one.GetOne(ctx, key); return err }); err != nil {
		return nil, 0, err
	}
	now = c.now()
	return c.storeEntry(ctx, key, rec, now), now, nil
}

// storeRead is the Store's Get of keys, through the circuit, one record
// per key.
func (c *Cache[V]) storeRead(ctx context.Context, keys []string) ([][]byte, error) {
	var recs [][]byte
	if err := c.l2(ctx, func(ctx context.Context) (err error) { recs, err = c.store.Get(ctx, keys); return err }); err != nil {
		return nil, err
	}
	if len(recs) != len(keys) {
		c.st.l2Errors.Add(1)
		return nil, fmt.Errorf("cache: the Store returned %d records for %d keys", len(recs), len(keys))
	}
	return recs, nil
}

// storeEntry decodes key's Store record rec (read at now) and counts it:
// nil for a missing record or one that cannot be decoded.
func (c *Cache[V]) storeEntry(ctx context.Context, key string, rec []byte, now int64) *entry[V] {
	if rec == nil {
		c.st.l2Misses.Add(1)
		return nil
	}
	e, err := c.decode(rec, now)
	if err != nil {
		c.st.codecErrors.Add(1)
		c.st.l2Misses.Add(1)
		c.o.Logger.LogAttrs(ctx, slog.LevelWarn, "cache: cannot decode a Store record; treating it as missing", slog.String("key", key), slog.Any("error", err))
		return nil
	}
	c.st.l2Hits.Add(1)
	return e
}

func (c *Cache[V]) lease(ctx context.Context, keys []string) ([]string, error) {
	var tokens []string
	err := c.l2(ctx, func(ctx context.Context) (err error) {
		tokens, err = c.store.Lease(ctx, keys, c.o.LeaseTTL)
		return err
	})
	if err == nil && len(tokens) != len(keys) {
		err = fmt.Errorf("cache: the Store returned %d lease tokens for %d keys", len(tokens), len(keys))
	}
	return tokens, err
}

// renewLeases keeps the fill leases of keys held by tokens alive while
// their load runs, every LeaseTTL/3, until Stop or until none is held any
// more. It returns nil (Stop is a no-op) when the Store cannot renew.
func (c *Cache[V]) renewLeases(ctx context.Context, keys, tokens []string) *renew.Renewer {
	if c.rn == nil || len(keys) == 0 {
		return nil
	}
	return renew.Start(max(time.Millisecond, c.o.LeaseTTL/3), func() bool {
		var held []bool
		err := c.l2(ctx, func(ctx context.Context) (err error) {
			held, err = c.rn.RenewLeases(ctx, keys, tokens, c.o.LeaseTTL)
			return err
		})
		if err != nil {
			return ctx.Err() == nil // the Store is failing: try again next time
		}
		for _, h := range held {
			if h {
				return true
			}
		}
		return false // every lease was voided (a Set or Delete) or lost
	})
}

// fillWait is how long an instance waits for another instance's fill
// before it loads by itself: the holder's whole load (its lease is
// renewed meanwhile) and a takeover's lease; 2 x LeaseTTL when the Store
// cannot renew leases.
func (c *Cache[V]) fillWait() time.Duration {
	if c.rn != nil {
		return c.o.LoadTimeout + 2*c.o.LeaseTTL
	}
	return 2 * c.o.LeaseTTL
}

func (c *Cache[V]) release(ctx context.Context, key, token string) {
	_ = c.l2(ctx, func(ctx context.Context) error { return c.store.Release(ctx, key, token) })
}

// storeFill writes loaded entries under their lease tokens and reports per key
// whether the Store took it. A key that cannot be encoded is not written
// (its lease is released).
func (c *Cache[V]) storeFill(ctx context.Context, keys, tokens []string, es []*entry[V]) []bool {
	now := c.now()
	out := make([]bool, len(keys))
	fills := make([]Fill, 0, len(keys))
	idx := make([]int, 0, len(keys))
	for i, e := range es {
		data, err := c.encode(e)
		if err != nil {
			c.o.Logger.LogAttrs(ctx, slog.LevelWarn, "cache: cannot encode a value for the Store", slog.String("key", keys[i]), slog.Any("error", err))
			c.release(ctx, keys[i], tokens[i])
			out[i] = true // kept in L1 all the same
			continue
		}
		fills = append(fills, Fill{Key: keys[i], Token: tokens[i], Data: data, TTL: ttlUntil(e.hard, now)})
		idx = append(idx, i)
	}
	if len(fills) == 0 {
		return out
	}
	var stored []bool
	err := c.l2(ctx, func(ctx context.Context) (err error) { stored, err = c.store.Fill(ctx, fills); return err })
	for j, i := range idx {
		switch {
		case err != nil || len(stored) != len(fills):
			out[i] = true // the Store is failing: keep the value in L1, the lease expires by itself
		case stored[j]:
			out[i] = true
		default:
			c.st.fillsRefused.Add(1)
		}
	}
	return out
}

func (c *Cache[V]) encode(e *entry[V]) ([]byte, error) {
	env := envelope{negative: e.negative, fresh: e.recFresh, hard: e.hard, load: e.loadNS}
	if !e.negative {
		b, err := c.o.Codec.Marshal(e.val)
		if err != nil {
			c.st.codecErrors.Add(1)
			return nil, fmt.Errorf("encoding the value: %w", err)
		}
		env.value = b
	}
	return env.encode(), nil
}

func (c *Cache[V]) decode(rec []byte, now int64) (*entry[V], error) {
	env, err := decodeEnvelope(rec)
	if err != nil {
		return nil, err
	}
	e := &entry[V]{negative: env.negative, fresh: min(env.fresh, now+int64(c.o.L1TTL)), recFresh: env.fresh, hard: env.hard, loadNS: env.load}
	if !env.negative {
		if err := c.unmarshal(env.value, &e.val); err != nil {
			return nil, err
		}
	}
	return c.seal(e), nil
}

// unmarshal decodes a Store value into *v, which holds the zero value:
// with the default JSON codec and a flat V (see New), through the flat
// plan when it takes the bytes (json.Unmarshal would decode them to the
// same value), else through the Codec.
func (c *Cache[V]) unmarshal(data []byte, v *V) error {
	if c.flat != nil {
		if c.flat.Decode(data, unsafe.Pointer(v)) {
			return nil
		}
		var zero V
		*v = zero // the plan may have set some fields before declining
	}
	return c.o.Codec.Unmarshal(data, v)
}

// Invalidation messages are "<instance>|k|<key>" (drop an L1 copy),
// "<instance>|n|<namespace>" (read the namespace's version again) and
// "<instance>|a|" (drop the whole L1: pending invalidations overflowed).
func (c *Cache[V]) publish(ctx context.Context, kind, name string) error {
	return c.l2(ctx, func(ctx context.Context) error { return c.store.Publish(ctx, c.id+"|"+kind+"|"+name) })
}

// subscribe subscribes to the Store's invalidation messages, and to its
// reconnects when it reports them.
func (c *Cache[V]) subscribe() (func(), error) {
	if t, ok := c.store.(Tracker); ok && c.tracked {
		return t.SubscribeTracking(c.onMessage, c.onTrackingLost, c.onTrackingBack)
	}
	if rs, ok := c.store.(ReconnectSubscriber); ok {
		return rs.SubscribeReconnects(c.onMessage, c.onReconnect)
	}
	return c.store.Subscribe(c.onMessage)
}

// onReconnect runs when the subscription came back after losing its
// connection: messages sent meanwhile are lost, so every L1 copy goes
// (loads in flight keep their result out of the L1) and every namespace
// version is read again.
func (c *Cache[V]) onReconnect() {
	c.flushL1()
	c.st.resubscribes.Add(1)
	c.o.Logger.Info("cache: the invalidation subscription reconnected; dropped the L1 (messages may have been lost)")
}

// onTrackingLost runs when the Store's feed of the server's
// invalidations is lost: changes may go unseen from now on, so every L1
// copy goes and copies kept until the feed is back get gapL1TTL.
func (c *Cache[V]) onTrackingLost() {
	c.flushL1Then(func() { c.untracked = true })
	c.st.feedLosses.Add(1)
	c.o.Logger.Warn("cache: lost the Store's invalidation feed; dropped the L1 (copies are kept for L1TTL until it is back)")
}

// onTrackingBack runs when the feed holds again: the copies read while it
// was lost were not tracked, so they go too.
func (c *Cache[V]) onTrackingBack() {
	c.flushL1Then(func() { c.untracked = false })
	c.st.resubscribes.Add(1)
	c.o.Logger.Info("cache: the Store's invalidation feed is back; dropped the L1 again")
}

func (c *Cache[V]) onMessage(msg string) {
	from, rest, ok := strings.Cut(msg, "|")
	if !ok || from == c.id {
		return
	}
	kind, name, ok := strings.Cut(rest, "|")
	if !ok {
		return
	}
	switch kind {
	case "k":
		c.supersede(name)
		c.l1.Invalidate(name)
	case "n":
		c.versions.Delete(name)
	case "a":
		c.flushL1()
	default:
		return
	}
	c.st.invalidations.Add(1)
}
