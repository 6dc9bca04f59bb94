package queueredis

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/serverclock"
)

// fields are a job hash's fields, in parseRecord's order (see record in
// the preamble).
var fields = [...]string{
	"kind", "payload", "priority", "state", "attempt", "max_attempts", "run_at", "timeout",
	"unique_key", "unique_until", "enqueued_at", "last_error", "finished_at", "token", "lease_until",
	"unique_active", "snoozes", "started_at", "progress_pct", "progress_msg", "progress_at", "output",
	"metadata",
}

// fieldIndex is each field's index in fields.
var fieldIndex = func() map[string]int {
	m := make(map[string]int, len(fields))
	for i, f := range fields {
		m[f] = i
	}
	return m
}()

// The scripts share one calling convention. KEYS are the same 16 keys of
// one queue, all under its hash tag (see Backend.keys), in every script
// but enqueueScript, which takes only the 7 it touches:
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
// and fmt ('%d') writes them without exponent notation. Numbers go to
// redis.call as strings ('0', fmt(n)): Redis formats a Lua number
// argument with '%.17g', several times the cost.
var preamble = []luaPiece{
	{"", serverclock.Lua}, // "": in every script
	{"fmt", `
-- fmt is integer n (a time in µs) as a string: '%d', which formats a
-- 64-bit integer, costs a tenth of '%.0f' (or of tostring, '%.14g', and
-- of a number passed to redis.call, '%.17g') and is as exact below 2^53.
local function fmt(n) return string.format('%d', n) end`},
	{"K", `
-- K are the keys of the queue that wake, ready and enqueue work on:
-- KEYS, except in publishScript, which points K at each subscriber
-- queue's keys in turn.
local K = KEYS`},
	{"record", `
-- record is a job as the scripts return it: its hash's fields and values
-- (one HGETALL: a pass over the hash, not a lookup per field), then 'id'
-- and its id; false when there is no job (no state). get and set read
-- and change a field of the record last made (set appends a pair for a
-- field it lacks); parseRecord takes the last pair of a name.
local AT = {} -- field -> index of its value in the last record; get checks the name before it
local function record(key, id)
  local v = redis.call('HGETALL', key)
  for i = 1, #v, 2 do AT[v[i]] = i + 1 end
  local i = AT.state
  if not i or v[i - 1] ~= 'state' then return false end
  v[#v + 1] = 'id'
  v[#v + 1] = id
  return v
end
local function get(v, name)
  local i = AT[name]
  if i and v[i - 1] == name then return v[i] end
  return nil -- one value, never none: tonumber(get(...)) needs an argument
end
local function set(v, name, x)
  local i = AT[name]
  if i and v[i - 1] == name then
    v[i] = x
  else
    v[#v + 1] = name
    v[#v + 1] = x
    AT[name] = #v
  end
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
-- wake ends the XREAD BLOCK of every Fetch waiting on the queue of wake
-- stream w. The stream's TTL (a day: an abandoned queue's stream goes
-- away) is renewed when its new entry is the first of a millisecond (id
-- "ms-0", as is the first entry of a new stream), not at every wake: at
-- most one PEXPIRE per millisecond instead of one per call.
local function wake(w)
  local id = redis.call('XADD', w, 'MAXLEN', '~', '1', '*', 'w', '1') -- '~': no trim but of whole nodes, a fraction of the cost
  if string.sub(id, -2) == '-0' then redis.call('PEXPIRE', w, '86400000') end
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

// luaPiece is a part of the preamble: Lua code defining name (record also
// defines AT, get and set); a piece without a name is in every script.
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

// mentions reports whether name appears in text as a whole word.
func mentions(text, name string) bool {
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

// enqueueLua defines enqueue, the body of enqueueScript,
// enqueueManyScript and publishScript: it stores one job whose fields are
// a[o+1..o+14]: id, kind, payload, priority, run_at, timeout (ns),
// enqueued_at, max_attempts, then unique_key, unique_until, unique_active
// (0/1), attempt, last_error, metadata (a JSON object, empty for none)
// (enqueueFields in all; the last six may be left out, nil, when they are
// empty or 0: enqueueScript's short form). jk is its hash, uk its unique
// hold, rk its priority's ready list, sk the scheduled ZSET, dk the done
// ZSET, ik the ids ZSET. It returns {'ok', state}, {'dup', holder id} or
// {'exists'} and wakes nobody. The same job again (same id, kind and
// payload: a call go-redis retried after a lost reply, or the caller's
// retry of an Enqueue that timed out but landed) is {'ok', 'again'}, not a
// duplicate of itself.
const enqueueLua = `
local function enqueue(jk, uk, rk, sk, dk, ik, a, o, now)
  local id, kind, payload, runat = a[o + 1], a[o + 2], a[o + 3], a[o + 5]
  local ukey = a[o + 9] or ''
  if redis.call('EXISTS', jk) == 1 then
    local v = redis.call('HMGET', jk, 'kind', 'payload')
    if v[1] == kind and v[2] == payload then return {'ok', 'again'} end
    return {'exists'}
  end
  if ukey ~= '' then
    local uuntil, active = tonumber(a[o + 10]), a[o + 11] == '1'
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
    if active then
      redis.call('DEL', uk)
      redis.call('HSET', uk, 'id', id, 'until', '0', 'active', '1')
    elseif uuntil > now then
      redis.call('DEL', uk)
      redis.call('HSET', uk, 'id', id, 'until', a[o + 10])
      redis.call('PEXPIRE', uk, fmt(math.max(1, math.ceil((uuntil - now) / 1000))))
    end
  end
  local state = 'pending'
  if tonumber(runat) > now then state = 'scheduled' end
  -- attempt and timeout are left out when 0 (every reader takes a
  -- missing number for 0): each field costs HSET a scan of the hash.
  local h = {'kind', kind, 'payload', payload, 'priority', a[o + 4], 'state', state,
    'max_attempts', a[o + 8], 'run_at', runat, 'enqueued_at', a[o + 7]}
  local attempt, timeout = a[o + 12] or '0', a[o + 6]
  if attempt ~= '0' then h[#h + 1], h[#h + 2] = 'attempt', attempt end
  if timeout ~= '0' then h[#h + 1], h[#h + 2] = 'timeout', timeout end
  if ukey ~= '' then
    h[#h + 1], h[#h + 2], h[#h + 3], h[#h + 4] = 'unique_key', ukey, 'unique_until', a[o + 10]
    if a[o + 11] == '1' then h[#h + 1], h[#h + 2] = 'unique_active', '1' end
  end
  local lastErr, md = a[o + 13] or '', a[o + 14] or ''
  if lastErr ~= '' then h[#h + 1], h[#h + 2] = 'last_error', lastErr end
  if md ~= '' then h[#h + 1], h[#h + 2] = 'metadata', md end
  redis.call('HSET', jk, unpack(h))
  redis.call('ZREM', dk, id) -- a done entry left by an expired hash of the same id
  redis.call('ZADD', ik, '0', id)
  if state == 'scheduled' then
    redis.call('ZADD', sk, runat, id)
  else
    redis.call('RPUSH', rk, id)
  end
  return {'ok', state}
end
`

// enqueueFields is how many ARGV one job takes in enqueueManyScript and
// publishScript, and in enqueueScript's long form; enqueueShort in its
// short form.
const (
	enqueueFields = 14
	enqueueShort  = 8
)

// enqueueScript stores a new job (see enqueueLua). It has keys of its
// own, the 7 it touches (Backend.enqueueKeys), not the 16 of the other
// scripts: each key and argument costs Redis about a microsecond to
// parse and to put in the script's tables. KEYS: 1 the ready list of the
// job's priority, 2 scheduled, 3 done, 4 wake, 5 the job's hash, 6 its
// unique hold, 7 ids. ARGV[3..]: the job's fields, enqueueShort of them
// when the rest are empty or 0, else enqueueFields. Reply: enqueue's.
var enqueueScript = script(false, enqueueLua+`
local r = enqueue(KEYS[5], KEYS[6], KEYS[1], KEYS[2], KEYS[3], KEYS[7], ARGV, 2, now_us(ARGV[2]))
if r[1] == 'ok' and r[2] ~= 'again' then wake(KEYS[4]) end
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
  local id, ukey = ARGV[o + 1], ARGV[o + 9]
  local r = enqueue(ARGV[1] .. id, uniqueKey(ukey), ready(ARGV[o + 4]), K[4], K[7], K[15], ARGV, o, now)
  out[#out + 1] = r[1]
  out[#out + 1] = r[2] or ''
  if r[1] == 'ok' and r[2] ~= 'again' then stored = true end
end
if stored then wake(K[9]) end
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
    local r = redis.call('ZRANGEBYSCORE', KEYS[z], '-inf', nowf, 'WITHSCORES', 'LIMIT', '0', '1000')
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
  local expired = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', nowf, 'LIMIT', '0', '1000')
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
  local old = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', '(' .. fmt(now - retention), 'LIMIT', '0', '1000')
  for _, id in ipairs(old) do
    local st = redis.call('HGET', base .. id, 'state')
    if st == 'done' then redis.call('DEL', base .. id) end
    if st == 'done' or not st then redis.call('ZREM', KEYS[15], id) end
  end
  if #old > 0 then redis.call('ZREM', KEYS[7], unpack(old)) end
  local oldDead = redis.call('ZRANGEBYSCORE', KEYS[13], '-inf', '(' .. fmt(now - deadRet), 'LIMIT', '0', '1000')
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
  local oldCancelled = redis.call('ZRANGEBYSCORE', KEYS[14], '-inf', '(' .. fmt(now - deadRet), 'LIMIT', '0', '1000')
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
    local ids = redis.call('LPOP', ready(a[o]), fmt(need))
    if ids then
      for _, id in ipairs(ids) do
        local k = base .. id
        local v = record(k, id) -- false: the hash is gone (a deleted job)
        if v then
          n = n + 1
          local attempt, t = fmt((tonumber(get(v, 'attempt')) or 0) + 1), tok .. '.' .. fmt(n)
          redis.call('HSET', k, 'attempt', attempt, 'state', 'active', 'token', t, 'lease_until', untilf, 'started_at', nowf)
          set(v, 'attempt', attempt)
          set(v, 'state', 'active')
          set(v, 'token', t)
          set(v, 'lease_until', untilf)
          set(v, 'started_at', nowf)
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
      local first = redis.call('ZRANGE', KEYS[z], '0', '0', 'WITHSCORES')
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
wake(KEYS[9])
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
wake(KEYS[9])
return 1
`)

// jobScript reads a job, reporting as pending a job that Fetch would take
// now (due, or its lease expired). ARGV[3]: id. Reply: the record, or nil.
var jobScript = readScript(`
local now = now_us(ARGV[2])
local v = record(KEYS[11], ARGV[3])
if not v then return false end
local st = get(v, 'state')
if (st == 'scheduled' or st == 'retry') and (tonumber(get(v, 'run_at')) or 0) <= now then set(v, 'state', 'pending') end
if st == 'active' and (tonumber(get(v, 'lease_until')) or 0) <= now then set(v, 'state', 'pending') end
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
  local head = redis.call('LINDEX', KEYS[i], '0')
  if head then candidate(redis.call('HGET', base .. head, 'run_at')) end
end
for z = 4, 5 do
  pending = pending + redis.call('ZCOUNT', KEYS[z], '-inf', nowf)
  local f = redis.call('ZRANGEBYSCORE', KEYS[z], '-inf', nowf, 'WITHSCORES', 'LIMIT', '0', '1')
  if f[2] then candidate(f[2]) end
end
pending = pending + redis.call('ZCOUNT', KEYS[6], '-inf', nowf)
local exp = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', nowf, 'LIMIT', '0', '1')
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
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[8], '0', fmt(tonumber(ARGV[3]) - 1))) do
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
redis.call('HSET', k, 'state', 'pending', 'attempt', '0', 'run_at', fmt(now))
redis.call('HDEL', k, 'finished_at', 'token')
redis.call('RPUSH', ready(redis.call('HGET', k, 'priority')), id)
wake(KEYS[9])
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
