package main

import (
	"strings"
	"testing"
)

// extraMetrics checks the families of the queue and dbrouter collectors.
func extraMetrics(t *testing.T, m string) {
	t.Helper()
	for _, family := range []string{"scalekit_queue_processed_total", "scalekit_queue_jobs", "scalekit_dbrouter_replica_reads_total", "scalekit_queue_periodic_ticks_total"} {
		if !strings.Contains(m, family) {
			t.Errorf("/metrics has no %s series", family)
		}
	}
}
