// Package priority carries a request's priority class in its ctx, for the
// policies that shed load by class (bulkhead.Bulkhead and
// throttle.Throttler): under overload, Sheddable requests go first, then
// Default ones, and Critical ones last. The classes are Envoy's and
// Netflix's.
//
//	ctx = priority.With(ctx, priority.Sheddable) // a prefetch, a batch job
//	err := bh.Do(ctx, call)                      // shed first when the bulkhead is full
//	c := priority.From(ctx)                      // Default when none was set
//
// It imports only the standard library.
package priority

import (
	"context"
	"fmt"
)

// Class is a request's priority class. The zero value is Default.
type Class int8

// The classes, lowest first.
const (
	// Sheddable requests are dropped first under overload: prefetches,
	// retries of background work, anything a user does not wait for.
	Sheddable Class = -1
	// Default is every request not marked otherwise.
	Default Class = 0
	// Critical requests are dropped last: what a user waits for, payments,
	// health checks.
	Critical Class = 1
)

// Classes lists the classes, lowest first.
var Classes = [...]Class{Sheddable, Default, Critical}

// String returns "sheddable", "default" or "critical".
func (c Class) String() string {
	switch c {
	case Sheddable:
		return "sheddable"
	case Default:
		return "default"
	case Critical:
		return "critical"
	}
	return fmt.Sprintf("Class(%d)", int8(c))
}

// Parse returns the class named s ("sheddable", "default", "critical"),
// or false.
func Parse(s string) (Class, bool) {
	for _, c := range Classes {
		if c.String() == s {
			return c, true
		}
	}
	return Default, false
}

// Index is c's position in Classes (0 for Sheddable, 2 for Critical), for
// arrays indexed by class; a class out of range counts as Default.
func (c Class) Index() int {
	if c < Sheddable || c > Critical {
		return 1
	}
	return int(c) + 1
}

type ctxKey struct{}

// With returns a ctx carrying c.
func With(ctx context.Context, c Class) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// From returns the class ctx carries, Default when none.
func From(ctx context.Context) Class {
	if c, ok := ctx.Value(ctxKey{}).(Class); ok {
		return c
	}
	return Default
}

// Counts holds one counter per class.
type Counts struct {
	Sheddable, Default, Critical uint64
}

// Of returns the count of class c.
func (n Counts) Of(c Class) uint64 {
	switch c {
	case Sheddable:
		return n.Sheddable
	case Critical:
		return n.Critical
	}
	return n.Default
}
