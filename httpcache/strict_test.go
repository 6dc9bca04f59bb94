package httpcache

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"
)

// cacheControl is a Cache-Control field parsed strictly: every directive
// a response directive of RFC 9111 section 5.2.2 (or RFC 5861, RFC 8246),
// once, with the argument syntax its definition requires.
type cacheControl map[string]int64 // directive -> delta-seconds; -1: no argument

// responseDirectives: name -> takes delta-seconds (true) or no argument.
var responseDirectives = map[string]bool{
	"max-age": true, "s-maxage": true, "stale-while-revalidate": true, "stale-if-error": true,
	"public": false, "private": false, "no-store": false, "no-cache": false, "must-revalidate": false,
	"proxy-revalidate": false, "must-understand": false, "no-transform": false, "immutable": false,
}

// parseCacheControl checks one Cache-Control field value by RFC 9111's
// grammar (#cache-directive, token [ "=" ( token / quoted-string ) ],
// delta-seconds = 1*DIGIT) and, since every directive here is also a
// structured-field Dictionary member, by RFC 9651's (httpsfv): integers
// where RFC 9111 wants delta-seconds, bare keys (true) where it wants none.
func parseCacheControl(t testing.TB, values []string) cacheControl {
	t.Helper()
	if len(values) != 1 {
		t.Fatalf("Cache-Control: %d field lines %q, want 1", len(values), values)
	}
	v := values[0]
	cc := cacheControl{}
	for _, part := range strings.Split(v, ",") {
		part = strings.Trim(part, " \t")
		name, arg, hasArg := strings.Cut(part, "=")
		if name == "" || !isTokenField(name) || name != strings.ToLower(name) {
			t.Fatalf("Cache-Control %q: directive %q is not a lower-case token", v, part)
		}
		numeric, known := responseDirectives[name]
		if !known {
			t.Fatalf("Cache-Control %q: %q is not a response directive", v, name)
		}
		if _, dup := cc[name]; dup {
			t.Fatalf("Cache-Control %q: %q twice", v, name)
		}
		switch {
		case numeric && !hasArg:
			t.Fatalf("Cache-Control %q: %s needs delta-seconds", v, name)
		case !numeric && hasArg:
			t.Fatalf("Cache-Control %q: %s takes no argument", v, name)
		case numeric:
			if arg == "" || strings.Trim(arg, "0123456789") != "" || len(arg) > 10 {
				t.Fatalf("Cache-Control %q: %s=%q is not delta-seconds (1*DIGIT)", v, name, arg)
			}
			n, _ := strconv.ParseInt(arg, 10, 64)
			cc[name] = n
		default:
			cc[name] = -1
		}
	}
	_, pub := cc["public"]
	_, priv := cc["private"]
	if pub && priv {
		t.Fatalf("Cache-Control %q: public and private", v)
	}
	if _, ok := cc["no-store"]; ok && len(cc) > 1 {
		t.Fatalf("Cache-Control %q: no-store with other directives", v)
	}
	// RFC 9651: the same value as a Dictionary.
	d, err := httpsfv.UnmarshalDictionary(values)
	if err != nil {
		t.Fatalf("Cache-Control %q is not an RFC 9651 Dictionary: %v", v, err)
	}
	if len(d.Names()) != len(cc) {
		t.Fatalf("Cache-Control %q: Dictionary has %d members, want %d", v, len(d.Names()), len(cc))
	}
	for name, n := range cc {
		m, _ := d.Get(name)
		it, ok := m.(httpsfv.Item)
		if !ok {
			t.Fatalf("Cache-Control %q: %s is not an Item", v, name)
		}
		switch val := it.Value.(type) {
		case int64:
			if val != n {
				t.Fatalf("Cache-Control %q: %s = %d as a Dictionary, %d by RFC 9111", v, name, val, n)
			}
		case bool:
			if !val || n != -1 {
				t.Fatalf("Cache-Control %q: %s = %v as a Dictionary", v, name, val)
			}
		default:
			t.Fatalf("Cache-Control %q: %s is a %T", v, name, val)
		}
	}
	return cc
}

// httpDate parses a field that must be an IMF-fixdate (RFC 9110 5.6.7),
// the only form a sender may generate.
func httpDate(t testing.TB, h http.Header, name string) time.Time {
	t.Helper()
	v := h.Values(name)
	if len(v) != 1 {
		t.Fatalf("%s: %q, want one field line", name, v)
	}
	tm, err := time.Parse(http.TimeFormat, v[0])
	if err != nil || tm.Format(http.TimeFormat) != v[0] {
		t.Fatalf("%s %q is not an IMF-fixdate: %v", name, v[0], err)
	}
	return tm
}

// caching is what a response's caching fields say, checked strictly and
// for consistency with each other.
type caching struct {
	cc   cacheControl
	date time.Time
	age  int64
}

// checkCaching parses h's Cache-Control, Date, Expires and Age strictly
// and checks that they agree: Expires - Date = max-age - Age exactly,
// Age <= max-age, no Expires or Age with no-store.
func checkCaching(t testing.TB, h http.Header) caching {
	t.Helper()
	c := caching{cc: parseCacheControl(t, h.Values("Cache-Control")), date: httpDate(t, h, "Date")}
	if _, ok := c.cc["no-store"]; ok {
		if h.Get("Expires") != "" || h.Get("Age") != "" {
			t.Fatalf("no-store with Expires %q / Age %q", h.Get("Expires"), h.Get("Age"))
		}
		return c
	}
	if a := h.Values("Age"); len(a) > 0 {
		if len(a) != 1 || a[0] == "" || strings.Trim(a[0], "0123456789") != "" {
			t.Fatalf("Age %q is not delta-seconds", a)
		}
		c.age, _ = strconv.ParseInt(a[0], 10, 64)
	}
	maxAge, ok := c.cc["max-age"]
	if !ok {
		t.Fatalf("Cache-Control %q: no max-age", h.Get("Cache-Control"))
	}
	if c.age > maxAge {
		t.Fatalf("Age %d > max-age %d", c.age, maxAge)
	}
	exp := httpDate(t, h, "Expires")
	if got := int64(exp.Sub(c.date) / time.Second); got != maxAge-c.age {
		t.Fatalf("Expires - Date = %ds, want max-age - Age = %ds", got, maxAge-c.age)
	}
	return c
}

// near fails unless got seconds is d within 1 s (rounded down).
func near(t testing.TB, what string, got int64, d time.Duration) {
	t.Helper()
	if diff := float64(got) - d.Seconds(); diff > 0.001 || diff < -1 {
		t.Fatalf("%s = %d, want %v (within 1s, not above)", what, got, d)
	}
}
