package queueredis

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/serverclock"
)

// fields are a job hash's fields in the order every script returns them,
// after the job's id (see record in the preamble and parseRecord).
var fields = []string{
	"kind", "payload", "priority", "state", "attempt", "max_attempts", "run_at", "timeout",
	"unique_key", "unique_until", "enqueued_at", "last_error", "finished_at", "token", "lease_until",
	"unique_active", "snoozes", "started_at", "progress_pct", "progress_msg", "progress_at", "output",
	"metadata",
}

// The scripts share one calling convention. KEYS are always the same 16
// keys of one queue, all under its hash tag (see Backend.keys):
//
//	1-3 ready lists of Default, High and Low jobs (index = priority + 1)
//	4 scheduled ZSET, 5 retry ZSET (by run-at), 6 active ZSET (by lease
//	deadline), 7 done ZSET (by finish time), 8 dead ZSET (by death order),
//	9 wake stream, 10 death sequence, 11 the job's hash, 12 its unique hold,
//	13 deadat ZSET (dead jobs by death time, for the dead retention),
//	14 cancelled ZSET (cancelled jobs by cancel time, for the dead retention),
//	15 ids ZSET (every job's id, score 0: List's order, see list.go),
//	16 the mark that ids holds the jobs enqueued before it existed (list.go)
//
// ARGV[1] is the key prefix of the queue's job hashes ("{prefix:queue}:job:"),
// for the scripts that touch jobs other than KEYS[11]; ARGV[2] is now in
// Unix microseconds, or -1 to read Redis TIME (serverclock.Micros, read
// with now_us of serverclock.Lua). Times are stored as Unix
// microseconds: Lua numbers are doubles, exact for integers up to 2^53,
// and string.format('%.0f') keeps them out of exponent notation.
var preamble = []luaPiece{
	{"", serverclock.Lua}, // "": in every script
	{"FIELDS", `
local FIELDS = {'` + strings.Join(fields, `', '`) + `'}
local IDX = {` + fieldIndex() + `}`},
	{"fmt", `
local function fmt(n) return string.format('%.0f', n) end`},
	{"K", `
-- K are the keys of the queue that wake, ready and enqueue work on:
-- KEYS, except in publishScript, which points K at each subscriber
-- queue's keys in turn.
local K = KEYS`},
	{"record", `
-- record is a job as the scripts return it: its id, then FIELDS.
local function record(key, id)
  local v = redis.call('HMGET', key, unpack(FIELDS))
  if not v[IDX.state - 1] then return false end
  table.insert(v, 1, id)
  return v
end`},
	{"held", `
-- held is the fence of every outcome: the job is active under this token
-- and its lease has not run out. It also returns the fields read: state,
-- token, lease_until, then those named in ... (in the same HMGET).
local function held(key, token, now, ...)
  local v = redis.call('HMGET', key, 'state', 'token', 'lease_until', ...)
  return v[1] == 'active' and v[2] == token and (tonumber(v[3]) or 0) > now, v
end`},
	{"recorded", `
-- recorded: this lease's outcome is already stored (the job left active
-- in one of states, its token kept). Release and the reclaim of an
-- expired lease drop the token, so they never match.
local function recorded(key, token, states)
  local v = redis.call('HMGET', key, 'state', 'token')
  return v[2] == token and states[v[1]] == true
end`},
	{"wake", `
-- wake ends the XREAD BLOCK of every Fetch waiting on this queue.
local function wake()
  redis.call('XADD', K[9], 'MAXLEN', '~', '1', '*', 'w', '1') -- '~': no trim but of whole nodes, a fraction of the cost
  redis.call('PEXPIRE', K[9], 86400000)
end`},
	{"ready", `
local function ready(priority) return K[tonumber(priority) + 1] end`},
	{"uniqueKey", `
-- uniqueKey is the key of a unique hold of this queue (KEYS[12] names
-- only the enqueued job's): the queue's hash tag from ARGV[1] ("...job:").
local function uniqueKey(ukey) return string.sub(ARGV[1], 1, -5) .. 'unique:' .. ukey end`},
	{"dropHold", `
-- dropHold deletes the unique hold of job id (hash k), whatever its kind,
-- if it names that job.
local function dropHold(k, id)
  local ukey = redis.call('HGET', k, 'unique_key')
  if ukey then
    local uk = uniqueKey(ukey)
    if redis.call('HGET', uk, 'id') == id then redis.call('DEL', uk) end
  end
end`},
	{"releaseUnique", `
-- releaseUnique drops the while-active hold of job id (hash k), which
-- finished or is deleted. active and ukey are its unique_active and
-- unique_key fields when the caller read them (false when absent), nil
-- to read them here.
local function releaseUnique(k, id, active, ukey)
  if active == nil then
    local v = redis.call('HMGET', k, 'unique_active', 'unique_key')
    active, ukey = v[1], v[2]
  end
  if active == '1' and ukey then
    local uk = uniqueKey(ukey)
    if redis.call('HGET', uk, 'id') == id then redis.call('DEL', uk) end
  end
end`},
}

// fieldIndex is the Lua table constructor of IDX: each field's index in
// a record (the id is 1), a constant table instead of a loop run on
// every call.
func fieldIndex() string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f + " = " + strconv.Itoa(i+2)
	}
	return strings.Join(parts, ", ")
}

// luaPiece is a part of the preamble: Lua code defining name (and, for
// FIELDS, IDX); a piece without a name is in every script.
type luaPiece struct{ name, code string }

// usedPreamble is the preamble a script body needs: the pieces whose name
// the body (or a piece it needs) mentions, in the preamble's order, so a
// script does not rebuild, on every call, tables and functions it never
// uses (the whole preamble was about 5 µs of Redis CPU per call).
func usedPreamble(body string) string {
	used := make([]bool, len(preamble))
	text := body
	for changed := true; changed; {
		changed = false
		for i, p := range preamble {
			if !used[i] && (p.name == "" || mentions(text, p.name)) {
				used[i], changed = true, true
				text += p.code
			}
		}
	}
	var b strings.Builder
	for i, p := range preamble {
		if used[i] {
			b.WriteString(p.code)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// mentions reports whether name appears in text as a whole word (IDX
// counts as FIELDS: they are defined together).
func mentions(text, name string) bool {
	if name == "FIELDS" && mentions(text, "IDX") {
		return true
	}
	for i := 0; ; {
		j := strings.Index(text[i:], name)
		if j < 0 {
			return false
		}
		j += i
		before, after := j-1, j+len(name)
		if (before < 0 || !luaWord(text[before])) && (after >= len(text) || !luaWord(text[after])) {
			return true
		}
		i = j + 1
	}
}

func luaWord(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// script builds a script with Redis 7 flags (the shebang line): Redis
// then decides before the script runs whether it may run while memory is
// over maxmemory, instead of failing it at its first write command with
// its earlier writes already done. allowOOM is for the scripts that
// drain a queue (fetch and outcomes): a full Redis refuses new jobs but
// lets workers finish the queued ones.
func script(allowOOM bool, body string) *redis.Script {
	shebang := "#!lua\n"
	if allowOOM {
		shebang = "#!lua flags=allow-oom\n"
	}
	return redis.NewScript(shebang + usedPreamble(body) + body)
}

// readScript builds a script that writes nothing (it may run on a full
// Redis, and on a replica through EVAL_RO).
func readScript(body string) *redis.Script {
	return redis.NewScript("#!lua flags=no-writes\n" + usedPreamble(body) + body)
}

// enqueueLua defines enqueue, the body of enqueueScript and
// enqueueManyScript: it stores one job whose fields are a[o+1..o+14]: id,
// kind, payload, priority, run_at, timeout (ns), unique_key,
// unique_until, enqueued_at, max_attempts, attempt, last_error,
// unique_active (0/1), metadata (a JSON object, empty for none)
// (enqueueFields in all); jk is its hash, uk its unique hold. It returns
// {'ok', state}, {'dup', holder id} or {'exists'} and wakes nobody. The
// same job again (same id, kind and payload: a call go-redis retried
// after a lost reply, or the caller's retry of an Enqueue that timed out
// but landed) is {'ok', 'again'}, not a duplicate of itself.
const enqueueLua = `
local function enqueue(jk, uk, a, o, now)
  local id, kind, payload, prio, runat = a[o + 1], a[o + 2], a[o + 3], a[o + 4], a[o + 5]
  local ukey, uuntil = a[o + 7], tonumber(a[o + 8])
  if redis.call('EXISTS', jk) == 1 then
    local v = redis.call('HMGET', jk, 'kind', 'payload')
    if v[1] == kind and v[2] == payload then return {'ok', 'again'} end
    return {'exists'}
  end
  local active = a[o + 13] == '1'
  if ukey ~= '' then
    local h = redis.call('HMGET', uk, 'id', 'until', 'active')
    if h[1] and h[1] ~= id then
      if h[3] == '1' then
        -- held while its job is neither done, dead nor cancelled (nor gone)
        local st = redis.call('HGET', ARGV[1] .. h[1], 'state')
        if st and st ~= 'done' and st ~= 'dead' and st ~= 'cancelled' then return {'dup', h[1]} end
      elseif (tonumber(h[2]) or 0) > now then
        return {'dup', h[1]}
      end
    end
  end
  if ukey ~= '' and active then
    redis.call('DEL', uk)
    redis.call('HSET', uk, 'id', id, 'until', 0, 'active', '1')
  elseif ukey ~= '' and uuntil > now then
    redis.call('DEL', uk)
    redis.call('HSET', uk, 'id', id, 'until', a[o + 8])
    redis.call('PEXPIRE', uk, math.max(1, math.ceil((uuntil - now) / 1000)))
  end
  local state = 'pending'
  if tonumber(runat) > now then state = 'scheduled' end
  redis.call('HSET', jk, 'kind', kind, 'payload', payload, 'priority', prio, 'state', state,
    'attempt', a[o + 11], 'max_attempts', a[o + 10], 'run_at', runat, 'timeout', a[o + 6], 'enqueued_at', a[o + 9])
  if ukey ~= '' then redis.call('HSET', jk, 'unique_key', ukey, 'unique_until', a[o + 8]) end
  if ukey ~= '' and active then redis.call('HSET', jk, 'unique_active', '1') end
  if a[o + 12] ~= '' then redis.call('HSET', jk, 'last_error', a[o + 12]) end
  if a[o + 14] ~= '' then redis.call('HSET', jk, 'metadata', a[o + 14]) end
  redis.call('ZREM', K[7], id) -- a done entry left by an expired hash of the same id
  redis.call('ZADD', K[15], 0, id)
  if state == 'scheduled' then
    redis.call('ZADD', K[4], runat, id)
  else
    redis.call('RPUSH', ready(prio), id)
  end
  return {'ok', state}
end
`

// enqueueFields is how many ARGV one job takes in the enqueue scripts.
const enqueueFields = 14

// enqueueScript stores a new job (see enqueueLua). ARGV[3..16]: the job's
// fields. Reply: enqueue's.
var enqueueScript = script(false, enqueueLua+`
local r = enqueue(KEYS[11], KEYS[12], ARGV, 2, now_us(ARGV[2]))
if r[1] == 'ok' and r[2] ~= 'again' then wake() end
return r
`)

// enqueueManyScript stores a batch of jobs of this queue, in order, each
// as enqueueScript would (a later job sees the unique keys an earlier one
// took), and wakes the fetches once. ARGV[3..]: the jobs' fields,
// enqueueFields per job. Reply: two elements per job, enqueue's status and its state or
// holder id (empty for 'exists').
var enqueueManyScript = script(false, enqueueLua+`
local now = now_us(ARGV[2])
local out, stored = {}, false
for o = 2, #ARGV - 1, `+strconv.Itoa(enqueueFields)+` do
  local id, ukey = ARGV[o + 1], ARGV[o + 7]
  local r = enqueue(ARGV[1] .. id, uniqueKey(ukey), ARGV, o, now)
  out[#out + 1] = r[1]
  out[#out + 1] = r[2] or ''
  if r[1] == 'ok' and r[2] ~= 'again' then stored = true end
end
if stored then wake() end
return out
`)

// fetchLua defines fetch, the body of fetchScript and roundScript: it
// moves due scheduled and retry jobs to the back of their ready lists (in
// run-at order) and jobs whose lease expired to the front, drops done
// jobs past the retention and dead and cancelled jobs past the dead
// retention, then leases up to max jobs from the ready lists in the given
// priority order, counting an attempt on each. Its arguments are
// a[f+1..f+8]: max, lease (µs), retention (µs), token base, the three
// priorities in fetch order, dead retention (µs) (fetchFields in all);
// base is the job hashes' key prefix. It returns {µs until the next
// scheduled job, retry or lease deadline (-1: none), the wake stream's
// last id, jobs...}, the first two only when no job was leased.
const fetchLua = `
local function fetch(base, now, a, f)
  local max, lease, retention, tok = tonumber(a[f + 1]), tonumber(a[f + 2]), tonumber(a[f + 3]), a[f + 4]
  local deadRet = tonumber(a[f + 8])
  local nowf = fmt(now)
  local due = {}
  for z = 4, 5 do
    local r = redis.call('ZRANGEBYSCORE', KEYS[z], '-inf', nowf, 'WITHSCORES', 'LIMIT', 0, 1000)
    local ids = {}
    for i = 1, #r, 2 do
      ids[#ids + 1] = r[i]
      due[#due + 1] = {r[i], tonumber(r[i + 1]), z, i}
    end
    if #ids > 0 then redis.call('ZREM', KEYS[z], unpack(ids)) end
  end
  table.sort(due, function(a, b)
    if a[2] ~= b[2] then return a[2] < b[2] end
    if a[3] ~= b[3] then return a[3] < b[3] end
    return a[4] < b[4]
  end)
  for _, d in ipairs(due) do
    local k = base .. d[1]
    local p = redis.call('HGET', k, 'priority')
    if p then
      redis.call('HSET', k, 'state', 'pending')
      redis.call('RPUSH', ready(p), d[1])
    end
  end
  local expired = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', nowf, 'LIMIT', 0, 1000)
  for i = #expired, 1, -1 do
    local id = expired[i]
    local k = base .. id
    local v = redis.call('HMGET', k, 'state', 'priority')
    if v[1] == 'active' then
      redis.call('HSET', k, 'state', 'pending')
      redis.call('HDEL', k, 'token', 'lease_until')
      redis.call('LPUSH', ready(v[2]), id)
    end
  end
  if #expired > 0 then redis.call('ZREM', KEYS[6], unpack(expired)) end
  local old = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', '(' .. fmt(now - retention), 'LIMIT', 0, 1000)
  for _, id in ipairs(old) do
    local st = redis.call('HGET', base .. id, 'state')
    if st == 'done' then redis.call('DEL', base .. id) end
    if st == 'done' or not st then redis.call('ZREM', KEYS[15], id) end
  end
  if #old > 0 then redis.call('ZREM', KEYS[7], unpack(old)) end
  local oldDead = redis.call('ZRANGEBYSCORE', KEYS[13], '-inf', '(' .. fmt(now - deadRet), 'LIMIT', 0, 1000)
  for _, id in ipairs(oldDead) do
    local k = base .. id
    if redis.call('HGET', k, 'state') == 'dead' then
      dropHold(k, id)
      redis.call('DEL', k)
      redis.call('ZREM', KEYS[8], id)
      redis.call('ZREM', KEYS[15], id)
    end
  end
  if #oldDead > 0 then redis.call('ZREM', KEYS[13], unpack(oldDead)) end
  local oldCancelled = redis.call('ZRANGEBYSCORE', KEYS[14], '-inf', '(' .. fmt(now - deadRet), 'LIMIT', 0, 1000)
  for _, id in ipairs(oldCancelled) do
    if redis.call('HGET', base .. id, 'state') == 'cancelled' then
      redis.call('DEL', base .. id)
      redis.call('ZREM', KEYS[15], id)
    end
  end
  if #oldCancelled > 0 then redis.call('ZREM', KEYS[14], unpack(oldCancelled)) end

  local out = {-1, ''}
  local n = 0
  local untilf = fmt(now + lease)
  local leased = {} -- ZADD's arguments: deadline, id, ...
  for o = f + 5, f + 7 do
    local need = max - n
    if need <= 0 then break end
    local ids = redis.call('LPOP', ready(a[o]), need)
    if ids then
      for _, id in ipairs(ids) do
        local k = base .. id
        local v = record(k, id) -- false: the hash is gone (a deleted job)
        if v then
          n = n + 1
          local attempt, t = (tonumber(v[IDX.attempt]) or 0) + 1, tok .. '.' .. n
          redis.call('HSET', k, 'attempt', attempt, 'state', 'active', 'token', t, 'lease_until', untilf, 'started_at', nowf)
          v[IDX.attempt], v[IDX.state], v[IDX.token], v[IDX.lease_until], v[IDX.started_at] = tostring(attempt), 'active', t, untilf, nowf
          leased[#leased + 1] = untilf
          leased[#leased + 1] = id
          out[#out + 1] = v
        end
      end
    end
  end
  if n > 0 then redis.call('ZADD', KEYS[6], unpack(leased)) end
  if n == 0 then
    for z = 4, 6 do
      local first = redis.call('ZRANGE', KEYS[z], 0, 0, 'WITHSCORES')
      if first[2] then
        local d = math.max(0, tonumber(first[2]) - now)
        if out[1] < 0 or d < out[1] then out[1] = d end
      end
    end
    local last = redis.call('XREVRANGE', KEYS[9], '+', '-', 'COUNT', 1)
    out[2] = '0-0'
    if last[1] then out[2] = last[1][1] end
  end
  return out
end
`

// fetchFields is how many ARGV a fetch takes (fetchLua).
const fetchFields = 8

// extendScript renews a held lease. ARGV[3..]: id, token, duration (µs).
// Reply: the new deadline (µs, a string), or 0 when the lease is lost.
var extendScript = script(true, `
local now = now_us(ARGV[2])
if not held(KEYS[11], ARGV[4], now) then return 0 end
local u = fmt(now + tonumber(ARGV[5]))
redis.call('HSET', KEYS[11], 'lease_until', u)
redis.call('ZADD', KEYS[6], u, ARGV[3])
return u
`)

// progressScript records a held job's progress. ARGV[3..]: id, token,
// percent, message. Reply: 1, or 0 when the lease is lost.
var progressScript = script(true, `
local now = now_us(ARGV[2])
if not held(KEYS[11], ARGV[4], now) then return 0 end
redis.call('HSET', KEYS[11], 'progress_pct', ARGV[5], 'progress_msg', ARGV[6], 'progress_at', fmt(now))
return 1
`)

// completeLua defines complete, the body of roundScript's completions:
// it marks job id (hash k) done at f (now, formatted) if the lease of
// token holds, stores its output (empty for none) and gives its hash ttl
// (ms) as a TTL; the caller moves the ids it appends to done (and takes
// them out of active) in one ZREM and one ZADD for the batch. It returns
// 1, or 0 when the lease is lost. The token stays on the job until its
// next lease, so a retried call finds its own completion and answers 1
// again.
const completeLua = `
local function complete(k, id, token, now, f, ttl, output, done)
  local ok, v = held(k, token, now, 'unique_active', 'unique_key')
  if not ok then
    if recorded(k, token, {done = true}) then return 1 end
    return 0
  end
  if output ~= '' then
    redis.call('HSET', k, 'state', 'done', 'finished_at', f, 'output', output)
  else
    redis.call('HSET', k, 'state', 'done', 'finished_at', f)
  end
  redis.call('PEXPIRE', k, ttl) -- lease_until stays: nothing reads it once the job is done
  releaseUnique(k, id, v[4], v[5])
  done[#done + 1] = id
  return 1
end
`

// roundScript is one round trip of a queue's batch (see batch.go): it
// completes jobs (completeLua) and then, when asked, fetches (fetchLua).
// ARGV[3]: the done hashes' TTL (ms); ARGV[4]: n, the completions; then
// n triples id, token, output; then, for a fetch, fetch's arguments.
// Reply: {a string of n '1' (completed) or '0' (lease lost), then, for a
// fetch, fetch's reply}.
var roundScript = script(true, completeLua+fetchLua+`
local base, now = ARGV[1], now_us(ARGV[2])
local n, nowf = tonumber(ARGV[4]), fmt(now)
local res, done = {}, {}
for i = 1, n do
  local o = 4 + 3 * (i - 1)
  res[i] = complete(base .. ARGV[o + 1], ARGV[o + 1], ARGV[o + 2], now, nowf, ARGV[3], ARGV[o + 3], done)
end
if #done > 0 then
  redis.call('ZREM', KEYS[6], unpack(done))
  local z = {}
  for i, id in ipairs(done) do z[2 * i - 1], z[2 * i] = nowf, id end
  redis.call('ZADD', KEYS[7], unpack(z))
end
local out = {table.concat(res)}
local f = 4 + 3 * n
if #ARGV >= f + `+strconv.Itoa(fetchFields)+` then
  for _, v in ipairs(fetch(base, now, ARGV, f)) do out[#out + 1] = v end
end
return out
`)

// failScript records a failed attempt of a held job: dead (when asked, or
// out of attempts), else retry at retry_at (pending at once when that is
// not in the future). ARGV[3..]: id, token, error, retry_at (µs), dead
// (0/1). Reply: 1, or 0 when the lease is lost. As with Complete, the
// token stays, so a retried call answers 1 again.
var failScript = script(true, `
local now = now_us(ARGV[2])
local k, id = KEYS[11], ARGV[3]
if not held(k, ARGV[4], now) then
  if recorded(k, ARGV[4], {retry = true, dead = true, pending = true}) then return 1 end
  return 0
end
redis.call('HDEL', k, 'lease_until')
redis.call('ZREM', KEYS[6], id)
local v = redis.call('HMGET', k, 'attempt', 'max_attempts', 'priority')
if ARGV[7] == '1' or tonumber(v[1]) >= tonumber(v[2]) then
  redis.call('HSET', k, 'state', 'dead', 'last_error', ARGV[5], 'finished_at', fmt(now))
  redis.call('ZADD', KEYS[8], redis.call('INCR', KEYS[10]), id)
  redis.call('ZADD', KEYS[13], fmt(now), id)
  releaseUnique(k, id)
  return 1
end
if tonumber(ARGV[6]) > now then
  redis.call('HSET', k, 'state', 'retry', 'last_error', ARGV[5], 'run_at', ARGV[6])
  redis.call('ZADD', KEYS[5], ARGV[6], id)
else
  redis.call('HSET', k, 'state', 'pending', 'last_error', ARGV[5], 'run_at', ARGV[6])
  redis.call('RPUSH', ready(v[3]), id)
end
wake()
return 1
`)

// releaseScript gives a held job back, the attempt not counted: to the
// front of its ready list, or, snoozed, to the scheduled ZSET until
// snooze_until (the back of its ready list when that time has come) with
// its snoozes counted. ARGV[3..]: id, token, snooze_until (µs, empty for
// none). Reply: 1, or 0 when the lease is lost.
var releaseScript = script(true, `
local now = now_us(ARGV[2])
local k, id = KEYS[11], ARGV[3]
if not held(k, ARGV[4], now) then return 0 end
redis.call('HINCRBY', k, 'attempt', -1)
redis.call('HDEL', k, 'token', 'lease_until')
redis.call('ZREM', KEYS[6], id)
local p = redis.call('HGET', k, 'priority')
if ARGV[5] == '' then
  redis.call('HSET', k, 'state', 'pending')
  redis.call('LPUSH', ready(p), id)
else
  redis.call('HINCRBY', k, 'snoozes', 1)
  if tonumber(ARGV[5]) > now then
    redis.call('HSET', k, 'state', 'scheduled', 'run_at', ARGV[5])
    redis.call('ZADD', KEYS[4], ARGV[5], id)
  else
    redis.call('HSET', k, 'state', 'pending', 'run_at', ARGV[5])
    redis.call('RPUSH', ready(p), id)
  end
end
wake()
return 1
`)

// jobScript reads a job, reporting as pending a job that Fetch would take
// now (due, or its lease expired). ARGV[3]: id. Reply: the record, or nil.
var jobScript = readScript(`
local now = now_us(ARGV[2])
local v = record(KEYS[11], ARGV[3])
if not v then return false end
local st = v[IDX.state]
if (st == 'scheduled' or st == 'retry') and (tonumber(v[IDX.run_at]) or 0) <= now then v[IDX.state] = 'pending' end
if st == 'active' and (tonumber(v[IDX.lease_until]) or 0) <= now then v[IDX.state] = 'pending' end
return v
`)

// countsScript counts a queue's jobs per state as Fetch would see them
// now, and the age of the oldest due job (µs): the heads of the ready
// lists and the earliest due scheduled, retry and expired jobs. ARGV[3]:
// retention (µs). Reply: {pending, scheduled, active, retry, dead, done,
// lag, cancelled}.
var countsScript = readScript(`
local base, now = ARGV[1], now_us(ARGV[2])
local nowf, later = fmt(now), '(' .. fmt(now)
local oldest = -1
local function candidate(runAt)
  runAt = tonumber(runAt)
  if runAt and (oldest < 0 or runAt < oldest) then oldest = runAt end
end
local pending = 0
for i = 1, 3 do
  pending = pending + redis.call('LLEN', KEYS[i])
  local head = redis.call('LINDEX', KEYS[i], 0)
  if head then candidate(redis.call('HGET', base .. head, 'run_at')) end
end
for z = 4, 5 do
  pending = pending + redis.call('ZCOUNT', KEYS[z], '-inf', nowf)
  local f = redis.call('ZRANGEBYSCORE', KEYS[z], '-inf', nowf, 'WITHSCORES', 'LIMIT', 0, 1)
  if f[2] then candidate(f[2]) end
end
pending = pending + redis.call('ZCOUNT', KEYS[6], '-inf', nowf)
local exp = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', nowf, 'LIMIT', 0, 1)
if exp[1] then candidate(redis.call('HGET', base .. exp[1], 'run_at')) end
local lag = 0
if oldest >= 0 then lag = math.max(0, now - oldest) end
return {pending,
  redis.call('ZCOUNT', KEYS[4], later, '+inf'),
  redis.call('ZCOUNT', KEYS[6], later, '+inf'),
  redis.call('ZCOUNT', KEYS[5], later, '+inf'),
  redis.call('ZCARD', KEYS[8]),
  redis.call('ZCOUNT', KEYS[7], fmt(now - tonumber(ARGV[3])), '+inf'),
  lag,
  redis.call('ZCARD', KEYS[14])}
`)

// deadScript lists up to limit dead jobs, most recent first. ARGV[3]:
// limit. Reply: records.
var deadScript = readScript(`
local base = ARGV[1]
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[8], 0, tonumber(ARGV[3]) - 1)) do
  local v = record(base .. id, id)
  if v then out[#out + 1] = v end
end
return out
`)

// requeueScript makes a dead or cancelled job pending again, attempts
// reset. ARGV[3]: id. Reply: 1, or 0 when the job is neither.
var requeueScript = script(false, `
local k, id = KEYS[11], ARGV[3]
local st = redis.call('HGET', k, 'state')
if st ~= 'dead' and st ~= 'cancelled' then return 0 end
local now = now_us(ARGV[2])
redis.call('ZREM', KEYS[8], id)
redis.call('ZREM', KEYS[13], id)
redis.call('ZREM', KEYS[14], id)
redis.call('HSET', k, 'state', 'pending', 'attempt', 0, 'run_at', fmt(now))
redis.call('HDEL', k, 'finished_at', 'token')
redis.call('RPUSH', ready(redis.call('HGET', k, 'priority')), id)
wake()
return 1
`)

// deleteScript removes a job: its id from every list and set of the
// queue, its unique hold (if it names the job), its hash. ARGV[3]: id.
// Reply: 1, or 0 when there is no such job.
var deleteScript = script(true, `
local k, id = KEYS[11], ARGV[3]
if redis.call('EXISTS', k) == 0 then return 0 end
dropHold(k, id)
for i = 1, 3 do redis.call('LREM', KEYS[i], 0, id) end
for _, z in ipairs({4, 5, 6, 7, 8, 13, 14, 15}) do redis.call('ZREM', KEYS[z], id) end
redis.call('DEL', k)
return 1
`)

// cancelScript cancels a job that has not finished: out of the ready
// lists and the scheduled, retry and active sets (an active job loses its
// token, so its lease is lost), state cancelled, in the cancelled set,
// its while-active unique hold dropped. ARGV[3]: id. Reply: 'ok', the
// state of a job it did not cancel (done, dead or cancelled), or an empty
// string when there is no such job.
var cancelScript = script(true, `
local k, id = KEYS[11], ARGV[3]
local st = redis.call('HGET', k, 'state')
if not st then return '' end
if st == 'done' or st == 'dead' or st == 'cancelled' then return st end
local now = fmt(now_us(ARGV[2]))
for i = 1, 3 do redis.call('LREM', KEYS[i], 0, id) end
for z = 4, 6 do redis.call('ZREM', KEYS[z], id) end
redis.call('HSET', k, 'state', 'cancelled', 'finished_at', now)
redis.call('HDEL', k, 'token', 'lease_until')
redis.call('ZADD', KEYS[14], now, id)
releaseUnique(k, id)
return 'ok'
`)
