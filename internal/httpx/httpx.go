// Package httpx holds small net/http helpers shared by the middleware of
// several packages.
package httpx

import "net/http"

// StatusWriter records the status a handler writes (200 if it writes none).
type StatusWriter struct {
	http.ResponseWriter
	Status int
	wrote  bool
}

// NewStatusWriter wraps w.
func NewStatusWriter(w http.ResponseWriter) *StatusWriter {
	return &StatusWriter{ResponseWriter: w, Status: http.StatusOK}
}

// WriteHeader records the first status and passes it on.
func (s *StatusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.Status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *StatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
