package httpx

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	rec := httptest.NewRecorder()
	x, w := Wrap(rec)
	if x.Status() != 200 || x.Wrote() {
		t.Fatal(x.Status())
	}
	w.WriteHeader(503)
	w.WriteHeader(200) // superfluous: passed on, not recorded
	if x.Status() != 503 || rec.Code != 503 || w.(interface{ Unwrap() http.ResponseWriter }).Unwrap() != rec {
		t.Fatalf("status %d, recorder %d", x.Status(), rec.Code)
	}
}

func TestInformationalStatusesPassThrough(t *testing.T) {
	rec := httptest.NewRecorder()
	x, w := Wrap(rec)
	var before []int
	x.BeforeHeader = func(s int) { before = append(before, s) }
	w.WriteHeader(http.StatusEarlyHints)
	w.WriteHeader(http.StatusEarlyHints)
	w.WriteHeader(http.StatusCreated)
	if x.Status() != http.StatusCreated || len(before) != 1 || before[0] != http.StatusCreated {
		t.Fatalf("status %d, BeforeHeader saw %v", x.Status(), before)
	}
}

// full has every optional interface; it records which were called.
type full struct {
	*httptest.ResponseRecorder
	flushed, hijacked, readFrom int
	readFromSrc                 io.Reader
}

func (f *full) Flush() { f.flushed++; f.ResponseRecorder.Flush() }
func (f *full) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	f.hijacked++
	return nil, nil, nil
}
func (f *full) ReadFrom(src io.Reader) (int64, error) {
	f.readFrom++
	f.readFromSrc = src
	return io.Copy(f.ResponseRecorder, src)
}

// onlyWriter hides every optional interface of what it wraps.
type onlyWriter struct{ http.ResponseWriter }

// Every combination of the optional interfaces comes out as it went in.
func TestWrapKeepsExactlyTheOptionalInterfaces(t *testing.T) {
	type combo struct {
		name    string
		w       func(*full) http.ResponseWriter
		f, h, r bool
	}
	type (
		F  = http.Flusher
		H  = http.Hijacker
		R  = io.ReaderFrom
		RW = http.ResponseWriter
	)
	combos := []combo{
		{"none", func(f *full) RW { return onlyWriter{f} }, false, false, false},
		{"F", func(f *full) RW {
			return struct {
				RW
				F
			}{onlyWriter{f}, f}
		}, true, false, false},
		{"H", func(f *full) RW {
			return struct {
				RW
				H
			}{onlyWriter{f}, f}
		}, false, true, false},
		{"R", func(f *full) RW {
			return struct {
				RW
				R
			}{onlyWriter{f}, f}
		}, false, false, true},
		{"FH", func(f *full) RW {
			return struct {
				RW
				F
				H
			}{onlyWriter{f}, f, f}
		}, true, true, false},
		{"FR", func(f *full) RW {
			return struct {
				RW
				F
				R
			}{onlyWriter{f}, f, f}
		}, true, false, true},
		{"HR", func(f *full) RW {
			return struct {
				RW
				H
				R
			}{onlyWriter{f}, f, f}
		}, false, true, true},
		{"FHR", func(f *full) RW { return f }, true, true, true},
	}
	for _, c := range combos {
		t.Run(c.name, func(t *testing.T) {
			f := &full{ResponseRecorder: httptest.NewRecorder()}
			inner := c.w(f)
			x, w := Wrap(inner)
			_, gf := w.(http.Flusher)
			_, gh := w.(http.Hijacker)
			_, gr := w.(io.ReaderFrom)
			if gf != c.f || gh != c.h || gr != c.r {
				t.Fatalf("wrapped: Flusher %v Hijacker %v ReaderFrom %v; want %v %v %v", gf, gh, gr, c.f, c.h, c.r)
			}
			if c.f {
				w.(http.Flusher).Flush()
				if f.flushed != 1 || !x.Wrote() || x.Status() != 200 {
					t.Fatalf("Flush: %d calls, wrote %v", f.flushed, x.Wrote())
				}
			}
			if c.h {
				if _, _, err := w.(http.Hijacker).Hijack(); err != nil || f.hijacked != 1 || !x.Hijacked() {
					t.Fatalf("Hijack: %v, %d calls", err, f.hijacked)
				}
			}
			if c.r {
				src := strings.NewReader("from a reader")
				if n, err := w.(io.ReaderFrom).ReadFrom(src); err != nil || n != 13 || f.readFrom != 1 || f.readFromSrc != src {
					t.Fatalf("ReadFrom: %d %v, %d calls (src passed on: %v)", n, err, f.readFrom, f.readFromSrc == src)
				}
				if x.Written() != 13 {
					t.Fatalf("Written %d", x.Written())
				}
			}
		})
	}
}

// A flush before the first write sends the header once: the middleware must
// not send a second status after net/http sent the implicit 200.
func TestFlushBeforeWriteSendsOneStatus(t *testing.T) {
	rec := httptest.NewRecorder()
	x, w := Wrap(rec)
	calls := 0
	x.BeforeHeader = func(int) { calls++; w.Header().Set("X-Before", "yes") }
	w.(http.Flusher).Flush()
	io.WriteString(w, "data")
	w.(http.Flusher).Flush()
	if calls != 1 || rec.Header().Get("X-Before") != "yes" || rec.Body.String() != "data" || x.Status() != 200 {
		t.Fatalf("BeforeHeader ran %d times, header %v, body %q", calls, rec.Header(), rec.Body.String())
	}
}

func TestBodySeesEveryPath(t *testing.T) {
	f := &full{ResponseRecorder: httptest.NewRecorder()}
	x, w := Wrap(f)
	var seen bytes.Buffer
	x.Body = func(p []byte) { seen.Write(p) }
	w.Write([]byte("a"))
	io.WriteString(w, "b")
	io.Copy(w, io.LimitReader(strings.NewReader("c"), 9)) // through ReadFrom (no WriterTo)
	if seen.String() != "abc" || f.Body.String() != "abc" || f.readFrom != 1 || x.Written() != 3 {
		t.Fatalf("seen %q, sent %q, ReadFrom calls %d, written %d", seen.String(), f.Body.String(), f.readFrom, x.Written())
	}
}

func BenchmarkWrap(b *testing.B) {
	rec := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		x, w := Wrap(rec)
		w.WriteHeader(204)
		_ = x.Status()
	}
}

// Get and Put: a pooled Writer keeps exactly the optional interfaces, starts
// clean however the last user left it, and costs no allocation.
func TestGetPut(t *testing.T) {
	f := &full{ResponseRecorder: httptest.NewRecorder()}
	for _, inner := range []http.ResponseWriter{f, onlyWriter{f}, struct {
		http.ResponseWriter
		http.Flusher
	}{onlyWriter{f}, f}} {
		for range 3 {
			x, w := Get(inner)
			_, gf := w.(http.Flusher)
			_, gh := w.(http.Hijacker)
			_, gr := w.(io.ReaderFrom)
			_, wf := inner.(http.Flusher)
			_, wh := inner.(http.Hijacker)
			_, wr := inner.(io.ReaderFrom)
			if gf != wf || gh != wh || gr != wr {
				t.Fatalf("%T: Flusher %v Hijacker %v ReaderFrom %v; want %v %v %v", inner, gf, gh, gr, wf, wh, wr)
			}
			if x.Wrote() || x.Written() != 0 || x.Hijacked() || x.BeforeHeader != nil || x.Body != nil {
				t.Fatalf("a pooled Writer starts dirty: %+v", x)
			}
			x.BeforeHeader = func(int) {}
			x.Body = func([]byte) {}
			w.WriteHeader(http.StatusTeapot)
			w.Write([]byte("x"))
			if x.Status() != http.StatusTeapot || x.Written() != 1 {
				t.Fatalf("status %d, written %d", x.Status(), x.Written())
			}
			Put(x)
		}
	}
	Put(nil)
	x, _ := Wrap(f)
	Put(x) // not pooled: nothing happens
	if x.Unwrap() != f {
		t.Fatal("Put changed a Writer of Wrap")
	}
	if raceEnabled {
		return
	}
	if n := testing.AllocsPerRun(100, func() {
		x, w := Get(f)
		w.WriteHeader(http.StatusNoContent)
		Put(x)
	}); n != 0 {
		t.Errorf("Get+Put: %v allocations, want 0", n)
	}
}
