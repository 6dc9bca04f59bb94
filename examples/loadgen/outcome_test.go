package main

import (
	"context"
	"io"
	"net/url"
	"testing"
)

func TestClassify(t *testing.T) {
	timeout := &url.Error{Op: "Get", URL: "http://127.0.0.1/x", Err: context.DeadlineExceeded}
	for _, tc := range []struct {
		k      kind
		r      result
		want   outcome
		reason string
	}{
		{kindReads, result{status: 200}, outcomeOK, ""},
		{kindReads, result{status: 404}, outcomeExpected, "404 no such user"},
		{kindWrites, result{status: 404}, outcomeExpected, "404 no such user"},
		{kindReads, result{status: 400}, outcomeUnexpected, "400 Bad Request"},
		{kindReads, result{status: 503}, outcomeUnexpected, "503 Service Unavailable"},
		{kindPosts, result{status: 404}, outcomeUnexpected, "404 Not Found"},
		{kindPosts, result{status: 429}, outcomeExpected, "429 rate limited"},
		{kindPayments, result{status: 201}, outcomeOK, ""},
		{kindPayments, result{status: 200}, outcomeUnexpected, "200 OK"},
		{kindPayments, result{status: 502}, outcomeExpected, "502 provider failed after retries"},
		{kindPayments, result{status: 503}, outcomeExpected, "503 unavailable (circuit open)"},
		{kindPayments, result{status: 422}, outcomeExpected, "422 refused"},
		{kindPayments, result{status: 409}, outcomeUnexpected, "409 Conflict"},
		{kindPayments, result{status: 409, expected: "409 overtaken by its own replay"}, outcomeExpected, "409 overtaken by its own replay"},
		{kindPayments, result{status: 500}, outcomeUnexpected, "500 Internal Server Error"},
		{kindReplays, result{status: 200}, outcomeOK, ""},
		{kindReplays, result{status: 409}, outcomeExpected, "409 original still running"},
		{kindReplays, result{status: 422}, outcomeUnexpected, "422 Unprocessable Entity"},
		{kindReplays, result{status: 201, problem: "replay body differs from the original"}, outcomeUnexpected, "replay body differs from the original"},
		{kindEmails, result{status: 202}, outcomeOK, ""},
		{kindEmails, result{status: 200}, outcomeUnexpected, "200 OK"},
		{kindEmails, result{err: timeout}, outcomeUnexpected, "timeout"},
		{kindEmails, result{err: io.ErrUnexpectedEOF}, outcomeUnexpected, "connection closed (EOF)"},
	} {
		o, reason := classify(tc.k, tc.r)
		if o != tc.want || reason != tc.reason {
			t.Errorf("classify(%s, %d, %v) = %d %q, want %d %q", tc.k, tc.r.status, tc.r.err, o, reason, tc.want, tc.reason)
		}
	}
}
