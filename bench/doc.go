// Package bench holds side-by-side benchmarks of scalekit against its peers.
// It is a separate module so the library never depends on them; see
// README.md for the naming convention and how to run it.
package bench
