package idempotencyredis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/internal/redisx"
	"github.com/scalekit-go/scalekit/internal/serverclock"
	"github.com/scalekit-go/scalekit/internal/token"
)

// Options configures New. Client is required.
type Options struct {
	// Client is the Redis. Its options need ContextTimeoutEnabled (or a
	// ReadTimeout no longer than Timeout), or New refuses it.
	Client redis.UniversalClient
	// Prefix starts every key. Default: "idempotency".
	Prefix string
	// Timeout bounds each call. Default: 100ms.
	Timeout time.Duration
	// Clock replaces the system clock (see package clock); nil is the
	// server's clock (Redis TIME).
	Clock clock.Clock
}

// Store is an idempotency.Store on Redis. It is safe for concurrent use.
type Store struct {
	c       redis.UniversalClient
	prefix  string
	timeout time.Duration
	clk     clock.Clock
}

// New returns a Store, or an error naming the option to fix.
func New(o Options) (*Store, error) {
	if o.Client == nil {
		return nil, fmt.Errorf("%w: idempotencyredis: Options.Client is required", idempotency.ErrInvalid)
	}
	if o.Prefix == "" {
		o.Prefix = "idempotency"
	}
	if o.Timeout == 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("%w: idempotencyredis: Options.Timeout must be > 0, got %v", idempotency.ErrInvalid, o.Timeout)
	}
	if err := redisx.CheckClientTimeouts(o.Client, o.Timeout); err != nil {
		return nil, fmt.Errorf("%w: idempotencyredis: Options.Client: %v", idempotency.ErrInvalid, err)
	}
	return &Store{c: o.Client, prefix: o.Prefix, timeout: o.Timeout, clk: o.Clock}, nil
}

func (s *Store) key(k string) string { return "{" + s.prefix + ":" + k + "}" }

// nowLua starts every script: now is ARGV[1] in Unix ms
// (serverclock.Millis), or Redis TIME.
const nowLua = serverclock.Lua + `
local now = now_ms(ARGV[1])
`

// A record is a hash: fp, st (run|done), tok, lease (Unix ms), exp (Unix
// ms), res. exp repeats the TTL so that simulated time expires records
// too; PEXPIRE frees the memory.
var beginScript = redis.NewScript(nowLua + `
local r = redis.call('HMGET', KEYS[1], 'fp', 'st', 'lease', 'res', 'exp')
if r[1] and tonumber(r[5]) <= now then
  redis.call('DEL', KEYS[1])
  r = {false}
end
if r[1] then
  if r[1] ~= ARGV[2] then return {'mismatch'} end
  if r[2] == 'done' then return {'done', r[4]} end
  local lease = tonumber(r[3])
  if lease > now then return {'running', string.format('%.0f', lease - now)} end
  redis.call('HSET', KEYS[1], 'tok', ARGV[3], 'lease', string.format('%.0f', now + tonumber(ARGV[4])))
  return {'started'}
end
redis.call('HSET', KEYS[1], 'fp', ARGV[2], 'st', 'run', 'tok', ARGV[3],
  'lease', string.format('%.0f', now + tonumber(ARGV[4])), 'exp', string.format('%.0f', now + tonumber(ARGV[5])))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {'started'}
`)

// held checks the token: the record exists, is running, is not expired.
const held = `
local r = redis.call('HMGET', KEYS[1], 'tok', 'st', 'exp')
if not r[1] or r[1] ~= ARGV[2] or r[2] ~= 'run' or tonumber(r[3]) <= now then return 0 end
`

var completeScript = redis.NewScript(nowLua + held + `
redis.call('HSET', KEYS[1], 'st', 'done', 'res', ARGV[3], 'exp', string.format('%.0f', now + tonumber(ARGV[4])))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)

var releaseScript = redis.NewScript(nowLua + held + `
redis.call('DEL', KEYS[1])
return 1
`)

var extendScript = redis.NewScript(nowLua + held + `
redis.call('HSET', KEYS[1], 'lease', string.format('%.0f', now + tonumber(ARGV[3])))
return 1
`)

func ms(d time.Duration) int64 { return max(1, d.Milliseconds()) }

// Begin is idempotency.Store.Begin, in one round trip.
func (s *Store) Begin(ctx context.Context, key, fingerprint string, lease, ttl time.Duration) (idempotency.Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	token := token.New()
	vals, err := beginScript.Run(ctx, s.c, []string{s.key(key)}, serverclock.Millis(s.clk), fingerprint, token, ms(lease), ms(ttl)).Slice()
	if err != nil {
		return idempotency.Outcome{}, err
	}
	str := func(i int) string {
		if i < len(vals) {
			if v, ok := vals[i].(string); ok {
				return v
			}
		}
		return ""
	}
	switch str(0) {
	case "started":
		return idempotency.Outcome{Status: idempotency.Started, Token: token}, nil
	case "running":
		left, err := strconv.ParseInt(str(1), 10, 64)
		if err != nil {
			return idempotency.Outcome{}, fmt.Errorf("idempotencyredis: bad lease in the script's reply: %w", err)
		}
		return idempotency.Outcome{Status: idempotency.Running, RetryAfter: time.Duration(left) * time.Millisecond}, nil
	case "done":
		return idempotency.Outcome{Status: idempotency.Completed, Result: []byte(str(1))}, nil
	case "mismatch":
		return idempotency.Outcome{Status: idempotency.Mismatch}, nil
	}
	return idempotency.Outcome{}, fmt.Errorf("idempotencyredis: unexpected script reply %v", vals)
}

func (s *Store) fenced(ctx context.Context, script *redis.Script, key string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n, err := script.Run(ctx, s.c, []string{s.key(key)}, append([]any{serverclock.Millis(s.clk)}, args...)...).Int()
	if err != nil {
		return err
	}
	if n != 1 {
		return idempotency.ErrLeaseLost
	}
	return nil
}

// Complete is idempotency.Store.Complete, in one round trip.
func (s *Store) Complete(ctx context.Context, key, token string, result []byte, ttl time.Duration) error {
	return s.fenced(ctx, completeScript, key, token, result, ms(ttl))
}

// Release is idempotency.Store.Release, in one round trip.
func (s *Store) Release(ctx context.Context, key, token string) error {
	return s.fenced(ctx, releaseScript, key, token)
}

// Extend is idempotency.Store.Extend, in one round trip.
func (s *Store) Extend(ctx context.Context, key, token string, lease time.Duration) error {
	return s.fenced(ctx, extendScript, key, token, ms(lease))
}

var _ idempotency.Store = (*Store)(nil)
