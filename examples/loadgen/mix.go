package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// kind is a kind of request.
type kind int

const (
	kindReads    kind = iota // GET /users/{id}
	kindWrites               // PUT /users/{id}
	kindPosts                // GET /posts?limit=N
	kindPayments             // POST /payments with a new Idempotency-Key
	kindEmails               // POST /emails
	kindReplays              // POST /payments re-sending an earlier key and body; not in -mix
	numKinds
)

// numMixKinds is how many kinds -mix can weigh: all but replays.
const numMixKinds = kindReplays

// allKinds indexes the all-requests row of summary.Latency.
const allKinds = numKinds

var kindNames = [numKinds]string{"reads", "writes", "posts", "payments", "emails", "replays"}

func (k kind) String() string { return kindNames[k] }

// mix is the weight of each kind of request.
type mix [numMixKinds]int

const maxWeight = 1_000_000

// parseMix parses "reads=80,writes=10,payments=10". Weights are
// non-negative integers, at least one positive; kinds left out weigh 0.
func parseMix(s string) (mix, error) {
	var m mix
	if strings.TrimSpace(s) == "" {
		return m, errors.New("-mix is empty; want e.g. reads=80,writes=10,payments=10")
	}
	var seen [numMixKinds]bool
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return m, fmt.Errorf("-mix: %q is not name=weight (e.g. reads=80)", part)
		}
		name = strings.TrimSpace(name)
		k := slices.Index(kindNames[:numMixKinds], name)
		if k < 0 {
			return m, fmt.Errorf("-mix: unknown kind %q; known: %s", name, strings.Join(kindNames[:numMixKinds], ", "))
		}
		if seen[k] {
			return m, fmt.Errorf("-mix: %s is given twice", name)
		}
		seen[k] = true
		w, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || w < 0 || w > maxWeight {
			return m, fmt.Errorf("-mix: the weight of %s must be an integer in [0, %d], got %q", name, maxWeight, val)
		}
		m[k] = w
	}
	if m.total() == 0 {
		return m, fmt.Errorf("-mix: at least one weight must be positive, got %q", s)
	}
	return m, nil
}

func (m mix) total() int {
	t := 0
	for _, w := range m {
		t += w
	}
	return t
}

// pick maps n in [0, total) to a kind, each kind taking its weight's share.
func (m mix) pick(n int) kind {
	for k, w := range m {
		if n < w {
			return kind(k)
		}
		n -= w
	}
	return kindReads // unreachable for n in [0, total)
}

func (m mix) String() string {
	var parts []string
	for k, w := range m {
		if w > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", kind(k), w))
		}
	}
	return strings.Join(parts, ",")
}
