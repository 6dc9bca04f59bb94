package main

import (
	crand "crypto/rand"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// lockedWriter serializes the progress, chaos and report lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	crand.Read(b[:]) // never fails (crypto/rand.Read)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func is2xx(status int) bool { return status >= 200 && status < 300 }

// excerpt is a body cut to one short line.
func excerpt(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

func answer(r result) string {
	if r.err != nil {
		return errClass(r.err)
	}
	return fmt.Sprintf("%d %s", r.status, excerpt(r.body))
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func sortedKeys[K interface{ ~int | ~string }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
