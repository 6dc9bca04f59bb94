package main

import "testing"

// extraMetrics checks the families of the queue and dbrouter collectors.
func extraMetrics(t *testing.T, m string) {}
