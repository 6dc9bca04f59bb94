package requestid

// Trace is what a W3C traceparent header says (Trace Context Level 1).
type Trace struct {
	// TraceID is the trace's ID: 32 lowercase hex digits, not all zero.
	TraceID string
	// SpanID is the span the header names (its parent-id: the caller's
	// span): 16 lowercase hex digits, not all zero.
	SpanID string
	// Flags are the trace flags; bit 0 is "sampled".
	Flags byte
}

// Sampled reports whether the caller sampled the trace (flag bit 0).
func (t Trace) Sampled() bool { return t.Flags&1 == 1 }

// ParseTraceparent parses a traceparent header value as W3C Trace Context
// Level 1 says a receiver must:
//
//	version "-" trace-id "-" parent-id "-" trace-flags
//	00      -   32 HEXDIGLC  -   16 HEXDIGLC   -   2 HEXDIGLC
//
// with lowercase hex digits only, trace-id and parent-id not all zeros,
// version 00 exactly 55 characters long, version ff invalid, and a later
// version read as version 00 when its first 55 characters parse so and are
// followed by nothing or by "-" (the fields it may add). It reports false
// for anything else, and the header is then ignored.
func ParseTraceparent(v string) (Trace, bool) {
	if len(v) < 55 || !lowerHex(v[0:2]) || v[0:2] == "ff" {
		return Trace{}, false
	}
	if v[0:2] == "00" {
		if len(v) != 55 {
			return Trace{}, false
		}
	} else if len(v) > 55 && v[55] != '-' {
		return Trace{}, false
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return Trace{}, false
	}
	t := Trace{TraceID: v[3:35], SpanID: v[36:52]}
	if !lowerHex(t.TraceID) || !lowerHex(t.SpanID) || !lowerHex(v[53:55]) || zeros(t.TraceID) || zeros(t.SpanID) {
		return Trace{}, false
	}
	t.Flags = unhex(v[53])<<4 | unhex(v[54])
	return t, true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func zeros(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// String returns t as a version 00 traceparent header value, which
// ParseTraceparent reads back: "00-<trace-id>-<span-id>-<flags>".
func (t Trace) String() string {
	const hexDigits = "0123456789abcdef"
	return "00-" + t.TraceID + "-" + t.SpanID + "-" + string([]byte{hexDigits[t.Flags>>4], hexDigits[t.Flags&15]})
}
