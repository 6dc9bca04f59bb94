// Package added is what the collectors of package metrics and of the
// otel module share about the primitives added to them: the key of a
// primitive added under a name, the duplicate check, the nil check of
// an Add argument, and how both read the primitives whose collection
// runs probes or I/O (health, queue counts) or whose arguments need more
// checks (dbrouter replicas).
package added

import (
	"fmt"
	"reflect"
)

// Named is a duplicate-check key of a primitive added under a name
// (each collector has its own comparable type with this method).
type Named interface {
	AddedAs() (kind, name string)
}

// Set is the keys added so far (a Named, or the primitive itself): they
// must be comparable. Its
// zero value is ready; the caller guards it with its own lock.
type Set struct{ seen map[any]bool }

// Add records key, or returns an error wrapping dup, naming method and
// the key, when it was added before.
func (s *Set) Add(dup error, method string, key any) error {
	if s.seen[key] {
		if n, ok := key.(Named); ok {
			kind, name := n.AddedAs()
			return fmt.Errorf("%w: %s: a %s named %q was added already", dup, method, kind, name)
		}
		return fmt.Errorf("%w: %s: this %T was added already", dup, method, key)
	}
	if s.seen == nil {
		s.seen = map[any]bool{}
	}
	s.seen[key] = true
	return nil
}

// IsNil reports whether v is nil or a nil pointer in an interface (which
// would panic at the first collection).
func IsNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}
