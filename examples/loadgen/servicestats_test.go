package main

import "testing"

// An /slo answer of an unknown shape is printed as indented JSON.
func TestSLOLinesFallBackToJSON(t *testing.T) {
	lines, err := sloLines([]byte(`[{"name":"x","objective":0.99}]`))
	if err != nil || len(lines) != 6 || lines[2] != `    "name": "x",` {
		t.Errorf("lines %q, err %v", lines, err)
	}
	if _, err := sloLines([]byte("not json")); err == nil {
		t.Error("no error for a body that is not JSON")
	}
}
