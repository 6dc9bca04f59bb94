package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// vuser is a virtual user: the requests about one user id share a client
// with its own cookie jar, so a write's read-your-writes token goes back
// with that user's later requests, and the newest token any response
// returned is sent in the X-DB-Token header as well (the jar keeps the
// token set last, which concurrent writes answering out of order make an
// older one).
type vuser struct {
	client  *http.Client
	version atomic.Int64 // the highest user version a write returned to this client

	mu       sync.Mutex
	token    string // the newest X-DB-Token a response carried
	tokenLSN uint64
}

// tokenHeader is the service's read-your-writes token header.
const tokenHeader = "X-DB-Token"

// tokenLSN reads the LSN of a token ("16/B374D848@1767225600123"); ok is
// false when it is not one.
func tokenLSN(tok string) (uint64, bool) {
	l, _, ok := strings.Cut(tok, "@")
	hi, lo, ok2 := strings.Cut(l, "/")
	if !ok || !ok2 {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	w, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return h<<32 | w, true
}

// noteToken keeps tok when it is newer than the token vu holds.
func (vu *vuser) noteToken(tok string) {
	l, ok := tokenLSN(tok)
	if !ok {
		return
	}
	vu.mu.Lock()
	if l > vu.tokenLSN || vu.token == "" {
		vu.token, vu.tokenLSN = tok, l
	}
	vu.mu.Unlock()
}

// header is the X-DB-Token header pair to send, or none.
func (vu *vuser) header() []string {
	vu.mu.Lock()
	defer vu.mu.Unlock()
	if vu.token == "" {
		return nil
	}
	return []string{tokenHeader, vu.token}
}

// send is generator.send with vu's client and newest token, keeping any
// newer token the response returns.
func (vu *vuser) send(ctx context.Context, g *generator, method, path string, body []byte, header ...string) result {
	r := g.send(ctx, vu.client, method, path, body, append(vu.header(), header...)...)
	if r.header != nil {
		vu.noteToken(r.header.Get(tokenHeader))
	}
	return r
}
