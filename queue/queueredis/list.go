package queueredis

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/scalekit-go/scalekit/queue"
)

// listScript is one call of List. The queue's ids ZSET (KEYS[15]: every
// job's id at score 0, kept by enqueue, Delete and the retention) gives
// the order: ZREVRANGEBYLEX below the cursor, at most budget ids, each
// job's state read from its hash (reported as jobScript does) and
// matched against kind and state. A queue's jobs stored before the ids
// ZSET existed (an older version of this package) are added to it by the
// first List of the queue, once (KEYS[16] marks it done): O(jobs of the
// queue) that one time. It writes only then, and may run on a full Redis
// (allow-oom): inspecting a queue is what an operator does when Redis is
// in trouble. ARGV[3..]: before (empty: from the highest id), limit,
// budget, kind, state (empty: any). Reply: {the next id (empty at the end), records...}.
var listScript = script(true, `
local base, now = ARGV[1], now_us(ARGV[2])
if redis.call('EXISTS', KEYS[16]) == 0 then
  local function add(ids)
    for i = 1, #ids, 5000 do
      local args = {}
      for j = i, math.min(i + 4999, #ids) do
        args[#args + 1] = 0
        args[#args + 1] = ids[j]
      end
      redis.call('ZADD', KEYS[15], unpack(args))
    end
  end
  for i = 1, 3 do add(redis.call('LRANGE', KEYS[i], 0, -1)) end
  for _, z in ipairs({4, 5, 6, 7, 8, 14}) do add(redis.call('ZRANGE', KEYS[z], 0, -1)) end
  redis.call('SET', KEYS[16], '1')
end
local top = '+'
if ARGV[3] ~= '' then top = '(' .. ARGV[3] end
local limit, budget, kind, state = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7]
local ids = redis.call('ZREVRANGEBYLEX', KEYS[15], top, '-', 'LIMIT', 0, budget)
local out, last = {''}, ''
for _, id in ipairs(ids) do
  local k = base .. id
  local v = redis.call('HMGET', k, 'state', 'kind', 'run_at', 'lease_until')
  local st = v[1]
  if st then
    if (st == 'scheduled' or st == 'retry') and (tonumber(v[3]) or 0) <= now then st = 'pending' end
    if st == 'active' and (tonumber(v[4]) or 0) <= now then st = 'pending' end
    if (kind == '' or v[2] == kind) and (state == '' or st == state) then
      if #out > limit then
        out[1] = last
        return out
      end
      local r = record(k, id)
      set(r, 'state', st)
      out[#out + 1] = r
      last = id
    end
  end
end
if #ids == budget then out[1] = ids[#ids] end
return out
`)

// List is queue.Backend.List: one script on the queue's ids ZSET (a
// sorted set of every job's id, one ZADD at enqueue). An unfiltered page
// reads Limit+1 ids; a filtered one examines at most
// queue.ListScanBudget ids (or Limit+1 if more), reading each job's
// state and kind, O(log n + budget) for a queue of n jobs, and may
// return fewer than Limit jobs with a next id. Ids compare as bytes.
func (b *Backend) List(ctx context.Context, q queue.ListQuery) ([]*queue.Message, string, error) {
	budget := q.Limit + 1
	if q.State != "" || q.Kind != "" {
		budget = max(budget, queue.ListScanBudget)
	}
	v, err := b.run(ctx, "List", listScript, b.keys(q.Queue, "", ""), b.tag(q.Queue)+"job:", b.now(),
		q.Before, q.Limit, budget, q.Kind, string(q.State))
	if err != nil {
		return nil, "", err
	}
	r, _ := v.([]any)
	next, ok := at[string](r, 0)
	if !ok {
		return nil, "", fmt.Errorf("queueredis: List: unexpected reply %v", v)
	}
	out := make([]*queue.Message, 0, len(r)-1)
	for _, rec := range r[1:] {
		m, _, _, err := parseRecord(q.Queue, rec)
		if err != nil {
			return nil, "", err
		}
		out = append(out, m)
	}
	return out, next, nil
}

// queuesKey is the set of the queue names (Queues), under the prefix's
// own hash tag: one slot of a Cluster, not any queue's.
func (b *Backend) queuesKey() string { return "{" + b.prefix + "}:queues" }

// registry remembers the queues this Backend added to the set of queue
// names, so that only its first enqueue to a queue costs the SADD.
type registry struct{ done sync.Map }

// register adds q to the set of queue names, once per Backend: the
// enqueue scripts cannot (in a Cluster the set is in another slot than
// the queue's keys), so the first enqueue to each queue pays one more
// round trip and the later ones nothing.
func (b *Backend) register(ctx context.Context, q string) error {
	if _, ok := b.reg.done.Load(q); ok {
		return nil
	}
	err := b.cmd(ctx, "registering queue "+q, func(ctx context.Context) error { return b.c.SAdd(ctx, b.queuesKey(), q).Err() })
	if err == nil {
		b.reg.done.Store(q, true)
	}
	return err
}

// Queues is queue.Backend.Queues: one SMEMBERS of the set of queue names
// ({Prefix}:queues), to which each Backend adds a queue at its first
// enqueue to it (one SADD per queue and process) and at Pause. Queues
// only an older version of this package enqueued to are not in it until
// a Backend of this version enqueues to them.
func (b *Backend) Queues(ctx context.Context) ([]string, error) {
	var out []string
	err := b.cmd(ctx, "Queues", func(ctx context.Context) (err error) {
		out, err = b.c.SMembers(ctx, b.queuesKey()).Result()
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}
