package queueredis

import (
	"strings"
	"testing"
)

// A script gets the preamble pieces it uses, those they use in turn, and
// no others, in the preamble's order.
func TestUsedPreamble(t *testing.T) {
	has := func(text, def string) bool { return strings.Contains(text, def) }
	got := usedPreamble("local r = enqueue(KEYS[11]) wake(K[9]) return ready(1)")
	for _, def := range []string{"local function now_us(", "local K = KEYS", "local function wake(", "local function ready("} {
		if !has(got, def) {
			t.Errorf("the preamble of an enqueue lacks %q", def)
		}
	}
	for _, def := range []string{"local AT", "local function record(", "local function held(", "local function dropHold(", "local function uniqueKey("} {
		if has(got, def) {
			t.Errorf("the preamble of an enqueue has %q, which it does not use", def)
		}
	}
	// Transitive: releaseUnique needs uniqueKey; record brings get and
	// set, defined with it.
	got = usedPreamble("return record(k, id) or releaseUnique(k, id)")
	for _, def := range []string{"local AT", "local function get(", "local function set(", "local function uniqueKey(", "local function record(", "local function releaseUnique("} {
		if !has(got, def) {
			t.Errorf("the preamble of record and releaseUnique lacks %q", def)
		}
	}
	if i, j := strings.Index(got, "local function uniqueKey("), strings.Index(got, "local function releaseUnique("); i > j {
		t.Errorf("uniqueKey is defined after releaseUnique, which uses it")
	}
	// Whole words only: a name inside another is not a use.
	if got := usedPreamble("local unheld, wakeful, fmtx = 1, 2, 3"); has(got, "local function held(") || has(got, "local function wake(") || has(got, "local function fmt(") {
		t.Errorf("a name inside another word counted as a use:\n%s", got)
	}
}
