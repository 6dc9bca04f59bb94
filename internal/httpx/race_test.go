//go:build race

package httpx

// raceEnabled: the race detector's sync.Pool drops items at random, so
// allocation counts do not hold under it.
const raceEnabled = true
