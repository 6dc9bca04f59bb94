// Package valuecall is the one body of the policies' generic DoValue: it
// runs a func(ctx) (T, error) through a Do(ctx, func(ctx) error) error and
// returns the value of the call that succeeded.
package valuecall

import "context"

// Do runs fn through do and returns the value fn returned with a nil
// error (the zero T otherwise) and do's error.
func Do[T any](ctx context.Context, do func(context.Context, func(context.Context) error) error, fn func(ctx context.Context) (T, error)) (T, error) {
	var out T
	err := do(ctx, func(ctx context.Context) error {
		v, err := fn(ctx)
		if err == nil {
			out = v
		}
		return err
	})
	return out, err
}
