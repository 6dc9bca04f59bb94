// Package httpx holds the one response wrapper the module's HTTP middleware
// use to watch a response go out.
//
// A wrapper that embeds http.ResponseWriter hides every optional interface of
// the writer it wraps: server-sent events stop flushing (http.Flusher),
// websocket upgrades fail (http.Hijacker) and file serving loses sendfile
// (io.ReaderFrom). Wrap returns a writer that implements each of those
// exactly when the wrapped writer does, and Unwrap for
// http.ResponseController.
package httpx

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
)

// Writer watches one response. Set its hooks before the handler runs; read
// Status after it returns. It is not safe for concurrent use, as an
// http.ResponseWriter is not.
type Writer struct {
	// BeforeHeader, when set, runs once just before the status goes out
	// (the first WriteHeader, Write, ReadFrom or Flush), with the status;
	// it may still change the headers.
	BeforeHeader func(status int)
	// Body, when set, sees every chunk of the body written through Write,
	// WriteString or ReadFrom. It must not keep p.
	Body func(p []byte)

	w        http.ResponseWriter
	status   int
	written  int64
	hijacked bool
	pooled   *wFHR // what Put gives back: set by Get
}

// Wrap wraps w. The returned ResponseWriter implements http.Flusher,
// http.Hijacker and io.ReaderFrom exactly when w does, so handlers behind
// the middleware see the writer they would see without it.
func Wrap(w http.ResponseWriter) (*Writer, http.ResponseWriter) {
	return wrap(&wFHR{}, w)
}

// pool holds the writers of Get. Every combination of optional interfaces
// is a struct{ Writer }, so one pooled *wFHR serves them all, converted.
var pool = sync.Pool{New: func() any { return new(wFHR) }}

// Get is Wrap with a Writer from a pool, for middleware on the hot path:
// no allocation. Give it back with Put once the handler has returned, and
// use neither it nor the ResponseWriter after that (a handler may not use
// its ResponseWriter after returning either: see http.Handler).
func Get(w http.ResponseWriter) (*Writer, http.ResponseWriter) {
	p := pool.Get().(*wFHR)
	x, ww := wrap(p, w)
	x.pooled = p
	return x, ww
}

// Put gives a Writer of Get back to the pool. Put of a Writer of Wrap, or
// of nil, does nothing.
func Put(x *Writer) {
	if x == nil || x.pooled == nil {
		return
	}
	p := x.pooled
	*x = Writer{}
	pool.Put(p)
}

// wrap makes p (zeroed) the wrapper of w.
func wrap(p *wFHR, w http.ResponseWriter) (*Writer, http.ResponseWriter) {
	p.Writer = Writer{w: w}
	_, f := w.(http.Flusher)
	_, h := w.(http.Hijacker)
	_, r := w.(io.ReaderFrom)
	switch {
	case f && h && r:
		return &p.Writer, p
	case f && h:
		return &p.Writer, (*wFH)(p)
	case f && r:
		return &p.Writer, (*wFR)(p)
	case h && r:
		return &p.Writer, (*wHR)(p)
	case f:
		return &p.Writer, (*wF)(p)
	case h:
		return &p.Writer, (*wH)(p)
	case r:
		return &p.Writer, (*wR)(p)
	}
	return &p.Writer, &p.Writer
}

// Status is the status sent: 200 when the handler sent none (net/http's
// implicit status), and the first final status when it sent several.
func (x *Writer) Status() int {
	if x.status == 0 {
		return http.StatusOK
	}
	return x.status
}

// Wrote reports whether the status has gone out.
func (x *Writer) Wrote() bool { return x.status != 0 }

// Written is the number of body bytes written.
func (x *Writer) Written() int64 { return x.written }

// Hijacked reports whether the handler took over the connection.
func (x *Writer) Hijacked() bool { return x.hijacked }

// Header returns the wrapped writer's header map.
func (x *Writer) Header() http.Header { return x.w.Header() }

// WriteHeader sends the status. Informational statuses (1xx but 101) pass
// through as often as the handler sends them; of the final statuses the
// first is recorded and runs BeforeHeader, and a later one is passed on
// untouched (net/http logs it as superfluous, as it would without the
// middleware).
func (x *Writer) WriteHeader(code int) {
	if x.status == 0 && (code >= 200 || code < 100 || code == http.StatusSwitchingProtocols) {
		x.status = code
		if x.BeforeHeader != nil {
			x.BeforeHeader(code)
		}
	}
	x.w.WriteHeader(code)
}

func (x *Writer) implicitHeader() {
	if x.status == 0 {
		x.WriteHeader(http.StatusOK)
	}
}

// Write writes body bytes, sending status 200 first if none was sent.
func (x *Writer) Write(p []byte) (int, error) {
	x.implicitHeader()
	if x.Body != nil {
		x.Body(p)
	}
	n, err := x.w.Write(p)
	x.written += int64(n)
	return n, err
}

// WriteString is Write for a string, without a copy when nothing watches
// the body and the wrapped writer takes strings.
func (x *Writer) WriteString(s string) (int, error) {
	sw, ok := x.w.(io.StringWriter)
	if !ok || x.Body != nil {
		return x.Write([]byte(s))
	}
	x.implicitHeader()
	n, err := sw.WriteString(s)
	x.written += int64(n)
	return n, err
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (x *Writer) Unwrap() http.ResponseWriter { return x.w }

func (x *Writer) flush() {
	x.implicitHeader()
	x.w.(http.Flusher).Flush()
}

func (x *Writer) hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := x.w.(http.Hijacker).Hijack()
	if err == nil {
		x.hijacked = true
	}
	return c, rw, err
}

func (x *Writer) readFrom(src io.Reader) (int64, error) {
	x.implicitHeader()
	if x.Body != nil {
		// The copy must see the bytes, so the wrapped ReadFrom gets a
		// reader it cannot sendfile from; it still avoids a buffer copy
		// where the connection can splice.
		src = io.TeeReader(src, bodyFunc(x.Body))
	}
	n, err := x.w.(io.ReaderFrom).ReadFrom(src)
	x.written += n
	return n, err
}

type bodyFunc func([]byte)

func (f bodyFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

// One type per combination of optional interfaces, each one allocation (or
// none, from the pool). They are all struct{ Writer }, so a *wFHR converts
// to any of them.
type (
	wF   struct{ Writer }
	wH   struct{ Writer }
	wR   struct{ Writer }
	wFH  struct{ Writer }
	wFR  struct{ Writer }
	wHR  struct{ Writer }
	wFHR struct{ Writer }
)

func (x *wF) Flush()                                         { x.flush() }
func (x *wFH) Flush()                                        { x.flush() }
func (x *wFR) Flush()                                        { x.flush() }
func (x *wFHR) Flush()                                       { x.flush() }
func (x *wH) Hijack() (net.Conn, *bufio.ReadWriter, error)   { return x.hijack() }
func (x *wFH) Hijack() (net.Conn, *bufio.ReadWriter, error)  { return x.hijack() }
func (x *wHR) Hijack() (net.Conn, *bufio.ReadWriter, error)  { return x.hijack() }
func (x *wFHR) Hijack() (net.Conn, *bufio.ReadWriter, error) { return x.hijack() }
func (x *wR) ReadFrom(src io.Reader) (int64, error)          { return x.readFrom(src) }
func (x *wFR) ReadFrom(src io.Reader) (int64, error)         { return x.readFrom(src) }
func (x *wHR) ReadFrom(src io.Reader) (int64, error)         { return x.readFrom(src) }
func (x *wFHR) ReadFrom(src io.Reader) (int64, error)        { return x.readFrom(src) }
