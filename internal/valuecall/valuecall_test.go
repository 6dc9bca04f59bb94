package valuecall

import (
	"context"
	"errors"
	"testing"
)

func TestDo(t *testing.T) {
	direct := func(ctx context.Context, fn func(context.Context) error) error { return fn(ctx) }
	if v, err := Do(context.Background(), direct, func(context.Context) (int, error) { return 4, nil }); v != 4 || err != nil {
		t.Fatalf("success: %v, %v", v, err)
	}
	boom := errors.New("boom")
	if v, err := Do(context.Background(), direct, func(context.Context) (int, error) { return 4, boom }); v != 0 || err != boom {
		t.Fatalf("failure: %v, %v; want the zero value and the error", v, err)
	}
}
