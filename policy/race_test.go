//go:build race

package policy_test

// raceEnabled: the race detector is on (sync.Pool then drops some frames,
// so a composed call may allocate).
const raceEnabled = true
