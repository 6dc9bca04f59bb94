package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"
)

type outcome int

const (
	outcomeOK outcome = iota
	outcomeExpected
	outcomeUnexpected
)

// result is what one request got.
type result struct {
	status   int         // 0: no response
	err      error       // transport error or timeout
	end      time.Time   // when the response was read or the request failed
	header   http.Header // nil without a response
	body     []byte      // up to maxBody bytes
	problem  string      // a success whose body breaks the contract: the category ...
	detail   string      // ... and the particulars
	expected string      // a status that context makes expected (a 409 caused by our own replay)
}

// classify sorts a result into ok, expected (429; 404 for an unknown
// user; 502, 503 and 422 for payments; 409 for a replay while its original
// runs) or unexpected (everything else), with a reason.
func classify(k kind, r result) (outcome, string) {
	switch {
	case r.err != nil:
		return outcomeUnexpected, errClass(r.err)
	case r.problem != "":
		return outcomeUnexpected, r.problem
	case r.expected != "":
		return outcomeExpected, r.expected
	case r.status == http.StatusTooManyRequests:
		return outcomeExpected, "429 rate limited"
	}
	s := r.status
	switch k {
	case kindReads, kindWrites:
		switch s {
		case http.StatusOK:
			return outcomeOK, ""
		case http.StatusNotFound:
			return outcomeExpected, "404 no such user"
		}
	case kindPosts:
		if s == http.StatusOK {
			return outcomeOK, ""
		}
	case kindPayments, kindReplays:
		switch s {
		case http.StatusCreated:
			return outcomeOK, ""
		case http.StatusOK:
			if k == kindReplays {
				return outcomeOK, ""
			}
		case http.StatusBadGateway:
			return outcomeExpected, "502 provider failed after retries"
		case http.StatusServiceUnavailable:
			return outcomeExpected, "503 unavailable (circuit open)"
		case http.StatusConflict:
			if k == kindReplays {
				return outcomeExpected, "409 original still running"
			}
		case http.StatusUnprocessableEntity:
			// A replay re-sends the original's exact body, so a 422 there
			// means the service fingerprinted the same request differently.
			if k == kindPayments {
				return outcomeExpected, "422 refused"
			}
		}
	case kindEmails:
		if s == http.StatusAccepted {
			return outcomeOK, ""
		}
	}
	if s == 0 {
		return outcomeUnexpected, "no response"
	}
	return outcomeUnexpected, fmt.Sprintf("%d %s", s, http.StatusText(s))
}

// errClass names a transport error briefly, so errors group well.
func errClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no local port left (EADDRNOTAVAIL)"
	case errors.Is(err, syscall.EMFILE):
		return "too many open files (raise ulimit -n)"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed (EOF)"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return "transport: " + err.Error()
}
