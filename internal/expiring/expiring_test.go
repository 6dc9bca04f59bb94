package expiring

import (
	"strconv"
	"testing"
	"time"
)

func TestGetSetDelete(t *testing.T) {
	var m Map[string] // the zero value works
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, ok := m.Get("a", now); ok {
		t.Fatal("found a key in an empty map")
	}
	m.Set("a", "1", now, time.Second)
	if v, ok := m.Get("a", now.Add(time.Second-time.Nanosecond)); !ok || v != "1" {
		t.Fatalf("just before expiry: %q, %v", v, ok)
	}
	if v, ok := m.Get("a", now.Add(time.Second)); ok || v != "" || m.Len() != 0 {
		t.Fatalf("at expiry: %q, %v, %d held; want gone and dropped", v, ok, m.Len())
	}
	m.Set("b", "2", now, time.Minute)
	m.Set("b", "3", now.Add(time.Minute), time.Minute) // a Set renews the deadline
	if v, ok := m.Get("b", now.Add(90*time.Second)); !ok || v != "3" {
		t.Fatalf("renewed: %q, %v", v, ok)
	}
	m.Delete("b")
	if _, ok := m.Get("b", now); ok {
		t.Fatal("deleted key found")
	}
}

// Expired entries nobody reads are swept out every 1024 Sets.
func TestSweep(t *testing.T) {
	var m Map[int]
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		m.Set("old"+strconv.Itoa(i), i, now, time.Second)
	}
	later := now.Add(time.Hour)
	for i := range sweepEvery - 1000 - 1 {
		m.Set("live"+strconv.Itoa(i), i, later, time.Hour)
	}
	if m.Len() != sweepEvery-1 {
		t.Fatalf("before the sweep: %d held, want %d", m.Len(), sweepEvery-1)
	}
	m.Set("last", 0, later, time.Hour) // the 1024th Set
	if want := sweepEvery - 1000; m.Len() != want {
		t.Fatalf("after the sweep: %d held, want the %d live ones", m.Len(), want)
	}
}
