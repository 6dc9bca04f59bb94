package httpcache

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"time"
)

// ETag is an entity tag (RFC 9110 section 8.8.3). The zero ETag is none.
type ETag struct {
	// Opaque is the tag between the quotes; only characters an etagc
	// allows (0x21, 0x23-0x7E, 0x80-0xFF).
	Opaque string
	// Weak marks a tag that promises semantic, not byte-for-byte,
	// equivalence: use it for a body that is transformed (compressed,
	// re-encoded) after the tag was computed.
	Weak bool
}

// VersionETag is the strong ETag of a resource at a version (a row's
// version counter, an updated_at in ns, a content revision): the version
// itself when it is a valid opaque tag, otherwise a hash of it.
func VersionETag(version string) ETag {
	if validOpaque(version) && version != "" {
		return ETag{Opaque: version}
	}
	return hashETag([]byte(version))
}

// HashETag is the strong ETag of a body: a SHA-256 of it (128 bits,
// base64url). Two bodies with the same bytes have the same tag.
func HashETag(body []byte) ETag { return hashETag(body) }

func hashETag(b []byte) ETag {
	sum := sha256.Sum256(b)
	return ETag{Opaque: base64.RawURLEncoding.EncodeToString(sum[:16])}
}

// Weaken is e as a weak tag, for a body transformed after e was computed.
func (e ETag) Weaken() ETag { e.Weak = true; return e }

// IsZero reports whether e is no tag.
func (e ETag) IsZero() bool { return e.Opaque == "" && !e.Weak }

// String is the field form: "v" or W/"v"; "" for the zero ETag.
func (e ETag) String() string {
	if e.IsZero() {
		return ""
	}
	if e.Weak {
		return `W/"` + e.Opaque + `"`
	}
	return `"` + e.Opaque + `"`
}

func validOpaque(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c == '"' || c == 0x7f {
			return false
		}
	}
	return true
}

// Validators are a representation's validators: what Check compares a
// request's preconditions with and what Write sends.
type Validators struct {
	// ETag is the current representation's tag; zero: none.
	ETag ETag
	// LastModified is when it last changed; zero: unknown. Sent and
	// compared at one-second precision.
	LastModified time.Time
	// Absent says the target has no current representation (a PUT that
	// would create it): If-Match: * fails, If-None-Match: * passes.
	Absent bool
}

// Write sets h's ETag and Last-Modified fields from v (those v has).
func (v Validators) Write(h http.Header) {
	hasTag, hasLM := !v.ETag.IsZero(), !v.LastModified.IsZero()
	if !hasTag && !hasLM {
		return
	}
	// One string and one slice for both values (a 304 path cost).
	var a [128]byte
	b := a[:0]
	if hasTag {
		if v.ETag.Weak {
			b = append(b, "W/"...)
		}
		b = append(b, '"')
		b = append(b, v.ETag.Opaque...)
		b = append(b, '"')
	}
	tagEnd := len(b)
	if hasLM {
		b = appendDate(b, v.LastModified)
	}
	s := string(b)
	vals := make([]string, 2)
	vals[0], vals[1] = s[:tagEnd], s[tagEnd:]
	if hasTag {
		h["Etag"] = vals[0:1:1]
	}
	if hasLM {
		h["Last-Modified"] = vals[1:2:2]
	}
}

// Check evaluates r's preconditions against v in the order of RFC 9110
// section 13.2.2 and returns the status to answer with: 0 to go on with
// the request, http.StatusNotModified for a GET or HEAD whose cached copy
// is current, http.StatusPreconditionFailed for a failed If-Match or
// If-Unmodified-Since (and If-None-Match on other methods). If-Match uses
// the strong comparison and If-None-Match the weak one; If-Unmodified-Since
// counts only without If-Match, and If-Modified-Since only on GET and
// HEAD without If-None-Match; an invalid date is ignored.
func Check(r *http.Request, v Validators) int {
	h := r.Header
	if im, ok := field(h, "If-Match"); ok {
		if !matchAny(im, v, true) {
			return http.StatusPreconditionFailed
		}
	} else if ius, ok := field(h, "If-Unmodified-Since"); ok && !v.LastModified.IsZero() {
		if t, err := http.ParseTime(ius); err == nil && v.LastModified.Truncate(time.Second).After(t) {
			return http.StatusPreconditionFailed
		}
	}
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	if inm, ok := field(h, "If-None-Match"); ok {
		if matchAny(inm, v, false) {
			if get {
				return http.StatusNotModified
			}
			return http.StatusPreconditionFailed
		}
	} else if ims, ok := field(h, "If-Modified-Since"); ok && get && !v.LastModified.IsZero() {
		if t, err := http.ParseTime(ims); err == nil && !v.LastModified.Truncate(time.Second).After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}

// field is h's field name as one value (the lines joined as a list, for
// the rare client that splits If-Match) and whether it is present.
func field(h http.Header, name string) (string, bool) {
	vs := h[name]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	s := vs[0]
	for _, v := range vs[1:] {
		s += "," + v
	}
	return s, true
}

// matchAny evaluates an If-Match (strong) or If-None-Match (weak) list
// against v: "*" matches any current representation. A malformed list
// matches nothing (so If-Match fails and If-None-Match lets the request
// through: a client's error never serves a wrong 304).
func matchAny(list string, v Validators, strong bool) bool {
	s := trimOWS(list)
	if s == "*" {
		return !v.Absent
	}
	if v.Absent || v.ETag.IsZero() {
		return false
	}
	for {
		for s != "" && (s[0] == ',' || s[0] == ' ' || s[0] == '\t') {
			s = s[1:] // empty list elements are allowed (RFC 9110 5.6.1)
		}
		if s == "" {
			return false
		}
		weak := false
		if len(s) >= 2 && s[0] == 'W' && s[1] == '/' {
			weak, s = true, s[2:]
		}
		if len(s) < 2 || s[0] != '"' {
			return false
		}
		end := 1
		for end < len(s) && s[end] != '"' {
			end++
		}
		if end == len(s) {
			return false
		}
		tag := s[1:end]
		if tag == v.ETag.Opaque && (!strong || !weak && !v.ETag.Weak) {
			return true
		}
		s = trimOWS(s[end+1:])
		if s != "" && s[0] != ',' {
			return false
		}
	}
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// Conditional writes v's validators to w's header and answers r's
// preconditions (Check): it returns true when it wrote the whole
// response (304 Not Modified, or 412 Precondition Failed), and the
// handler must write nothing more. Set the other headers a 200 would
// carry (Cache-Control, Expires, Vary, Content-Location) before calling
// it: a 304 keeps them, as RFC 9110 section 15.4.5 requires, drops the
// representation's Content-Type, Content-Length and Content-Encoding
// (and Last-Modified when there is an ETag), and has no body.
func Conditional(w http.ResponseWriter, r *http.Request, v Validators) bool {
	h := w.Header()
	v.Write(h)
	switch Check(r, v) {
	case http.StatusNotModified:
		delete(h, "Content-Type")
		delete(h, "Content-Length")
		delete(h, "Content-Encoding")
		if !v.ETag.IsZero() {
			delete(h, "Last-Modified")
		}
		w.WriteHeader(http.StatusNotModified)
		return true
	case http.StatusPreconditionFailed:
		w.WriteHeader(http.StatusPreconditionFailed)
		return true
	}
	return false
}
