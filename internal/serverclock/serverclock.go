// Package serverclock is "the server's clock unless a clock.Clock is set",
// written once for each of the three languages the engines speak: Go (the
// argument a call passes), Lua (what a Redis script makes of it) and SQL
// (what a PostgreSQL statement makes of it).
//
// A nil clock.Clock sends a sentinel (-1 to Redis, NULL to PostgreSQL) and
// the server reads its own clock, so that every instance of a fleet agrees
// on every deadline whatever its own clock says; a set one sends its time.
package serverclock

import (
	"strconv"
	"time"

	"github.com/scalekit-go/scalekit/clock"
)

// Micros is a script's time argument in Unix microseconds: c's time, or -1
// for Redis TIME (Lua's now_us).
func Micros(c clock.Clock) int64 {
	if c == nil {
		return -1
	}
	return c.Now().UnixMicro()
}

// Millis is a script's time argument in Unix milliseconds: c's time, or -1
// for Redis TIME (Lua's now_ms).
func Millis(c clock.Clock) int64 {
	if c == nil {
		return -1
	}
	return c.Now().UnixMilli()
}

// MicrosNanos is a script's time as a pair: Unix microseconds and the
// nanoseconds past them from c, or -1, 0 for Redis TIME (Lua's now_us_ns).
func MicrosNanos(c clock.Clock) (us, ns int64) {
	if c == nil {
		return -1, 0
	}
	t := c.Now().UnixNano()
	return t / 1000, t % 1000
}

// Lua defines the script side of Micros, Millis and MicrosNanos, to be put
// at the top of a script: now_us(arg) and now_ms(arg) return arg as a
// number, or Redis TIME in µs or ms when it is negative; now_us_ns(us, ns)
// returns the pair, or Redis TIME in µs and 0.
const Lua = `
local function now_us(arg)
  local n = tonumber(arg)
  if n < 0 then
    local t = redis.call('TIME')
    n = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return n
end
local function now_ms(arg)
  local n = tonumber(arg)
  if n < 0 then
    local t = redis.call('TIME')
    n = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return n
end
local function now_us_ns(us, ns)
  us, ns = tonumber(us), tonumber(ns)
  if us < 0 then
    local t = redis.call('TIME')
    us, ns = tonumber(t[1]) * 1000000 + tonumber(t[2]), 0
  end
  return us, ns
end
`

// Param is a statement's time parameter: c's time, or nil (NULL) for the
// server's now() (see SQL).
func Param(c clock.Clock) any {
	if c == nil {
		return nil
	}
	return c.Now()
}

// SQL is the SQL for "now" given the time parameter $n (Param):
// coalesce($n::timestamptz, now()).
func SQL(n int) string { return "coalesce($" + strconv.Itoa(n) + "::timestamptz, now())" }

// Since is how long ago t was by c (time.Since when c is nil).
func Since(c clock.Clock, t time.Time) time.Duration { return clock.Now(c).Sub(t) }
