package main

import (
	"errors"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		s    summary
		err  error
		want int
	}{
		{summary{OK: 10, Expected: 5}, nil, 0},
		{summary{OK: 10, Expected: 5, Dropped: 3}, nil, 0},
		{summary{OK: 10, Unexpected: 1}, nil, 1},
		{summary{}, errors.New("cannot reach"), 2},
	} {
		if got := exitCode(tc.s, tc.err); got != tc.want {
			t.Errorf("exitCode(%+v, %v) = %d, want %d", tc.s, tc.err, got, tc.want)
		}
	}
}
