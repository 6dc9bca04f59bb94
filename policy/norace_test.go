//go:build !race

package policy_test

// raceEnabled: the race detector is on.
const raceEnabled = false
