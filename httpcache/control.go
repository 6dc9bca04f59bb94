package httpcache

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/scalekit-go/scalekit/cache"
)

// ErrInvalid is wrapped by errors about bad options and bad Controls.
var ErrInvalid = errors.New("httpcache: invalid")

// Control is one response's caching policy (RFC 9111): what Write puts in
// Cache-Control, Expires, Age and Date. Durations are sent in whole
// seconds, rounded down, so a cache never keeps a response longer than
// the Control allows. The zero Control is "max-age=0": any cache may
// store the response but must revalidate it before each reuse.
type Control struct {
	// Public lets shared caches store the response even when the request
	// carried Authorization. Not with Private.
	Public bool
	// Private lets only the user's own (browser) cache store it; shared
	// caches (CDNs, Varnish) must not. Not with Public or SMaxAge.
	Private bool
	// NoStore forbids every cache to store the response: Write sends
	// "no-store" alone, no Expires or Age, whatever the other fields say.
	NoStore bool
	// NoCache lets caches store the response but makes them revalidate it
	// before every reuse.
	NoCache bool
	// MaxAge is how long after it was generated the response is fresh
	// (max-age, always written). With Age it is the response's whole
	// freshness lifetime, and it is fresh for MaxAge - Age more.
	MaxAge time.Duration
	// SMaxAge, when > 0, replaces MaxAge for shared caches (s-maxage):
	// a CDN that can be purged may keep a response longer than browsers,
	// which cannot.
	SMaxAge time.Duration
	// StaleWhileRevalidate, when > 0, lets a cache serve the response for
	// that long past its freshness while it revalidates it in the
	// background (RFC 5861).
	StaleWhileRevalidate time.Duration
	// StaleIfError, when > 0, lets a cache serve the response for that
	// long past its freshness when revalidating it fails (RFC 5861).
	StaleIfError time.Duration
	// Immutable says the response will not change while fresh: browsers
	// skip revalidating it on reload (RFC 8246).
	Immutable bool
	// Age, when > 0, is how old the response already is (it was stored
	// and is served again): Write sends an Age field and Expires at
	// MaxAge - Age from now. Not above MaxAge.
	Age time.Duration
}

// validate reports the first inconsistency of c, naming the field.
func (c Control) validate() error {
	switch {
	case c.Public && c.Private:
		return fmt.Errorf("%w: Control.Public and Control.Private are exclusive", ErrInvalid)
	case c.Private && c.SMaxAge > 0:
		return fmt.Errorf("%w: Control.SMaxAge is for shared caches, which a Private response excludes", ErrInvalid)
	}
	for _, f := range [...]struct {
		name string
		d    time.Duration
	}{{"MaxAge", c.MaxAge}, {"SMaxAge", c.SMaxAge}, {"StaleWhileRevalidate", c.StaleWhileRevalidate}, {"StaleIfError", c.StaleIfError}, {"Age", c.Age}} {
		if f.d < 0 {
			return fmt.Errorf("%w: Control.%s must be >= 0, got %v", ErrInvalid, f.name, f.d)
		}
	}
	if secs(c.Age) > secs(c.MaxAge) && !c.NoStore {
		return fmt.Errorf("%w: Control.Age (%v) must not exceed Control.MaxAge (%v)", ErrInvalid, c.Age, c.MaxAge)
	}
	return nil
}

// secs is d in whole seconds, rounded down.
func secs(d time.Duration) int64 { return int64(d / time.Second) }

// String is the Cache-Control field value, directives in a fixed order:
// "public, max-age=12, s-maxage=3600, stale-while-revalidate=30". It does
// not validate c (Write does).
func (c Control) String() string {
	return string(c.appendTo(make([]byte, 0, 96)))
}

func (c Control) appendTo(b []byte) []byte {
	if c.NoStore {
		return append(b, "no-store"...)
	}
	dir := func(name string) {
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = append(b, name...)
	}
	num := func(name string, d time.Duration) {
		dir(name)
		b = append(b, '=')
		b = strconv.AppendInt(b, secs(d), 10)
	}
	switch {
	case c.Public:
		dir("public")
	case c.Private:
		dir("private")
	}
	if c.NoCache {
		dir("no-cache")
	}
	num("max-age", c.MaxAge)
	if c.SMaxAge > 0 {
		num("s-maxage", c.SMaxAge)
	}
	if c.StaleWhileRevalidate > 0 {
		num("stale-while-revalidate", c.StaleWhileRevalidate)
	}
	if c.StaleIfError > 0 {
		num("stale-if-error", c.StaleIfError)
	}
	if c.Immutable {
		dir("immutable")
	}
	return b
}

// Write sets h's Cache-Control, Date (now), Expires (now + MaxAge - Age,
// so Expires - Date is exactly what max-age leaves, for HTTP/1.0 caches)
// and Age (when > 0), after validating c. With NoStore it sets
// Cache-Control: no-store and Date, and removes Expires and Age. now is
// the response's generation time (the caller's clock).
func (c Control) Write(h http.Header, now time.Time) error {
	if err := c.validate(); err != nil {
		return err
	}
	now = now.UTC().Truncate(time.Second)
	// One string and one slice backing every field's value: two
	// allocations per response, whatever it sets.
	var a [192]byte
	b := c.appendTo(a[:0])
	ccEnd := len(b)
	b = appendDate(b, now)
	dateEnd := len(b)
	if c.NoStore {
		s := string(b)
		vals := make([]string, 2)
		vals[0], vals[1] = s[:ccEnd], s[ccEnd:dateEnd]
		h["Cache-Control"], h["Date"] = vals[0:1:1], vals[1:2:2]
		delete(h, "Expires")
		delete(h, "Age")
		return nil
	}
	b = appendDate(b, now.Add(time.Duration(secs(c.MaxAge)-secs(c.Age))*time.Second))
	expEnd := len(b)
	age := secs(c.Age)
	if age > 0 {
		b = strconv.AppendInt(b, age, 10)
	}
	s := string(b)
	vals := make([]string, 4)
	vals[0], vals[1], vals[2], vals[3] = s[:ccEnd], s[ccEnd:dateEnd], s[dateEnd:expEnd], s[expEnd:]
	h["Cache-Control"], h["Date"], h["Expires"] = vals[0:1:1], vals[1:2:2], vals[2:3:3]
	if age > 0 {
		h["Age"] = vals[3:4:4]
	} else {
		delete(h, "Age")
	}
	return nil
}

// Policy derives Controls from a cache value's instants (cache.Info), so
// a response built from a value that stops being fresh in 12 s says
// max-age=12, and the window the cache would serve it stale is the
// window a CDN may: an edge cache then holds it exactly as long as the
// application's own cache does. The zero Policy is public.
type Policy struct {
	// Private makes the responses private: only the user's browser may
	// keep them (no s-maxage). Default: false, public.
	Private bool
	// BrowserMaxAge, when > 0, caps max-age: browsers (which cannot be
	// purged) keep the response at most that long, while shared caches
	// get s-maxage = the value's whole remaining freshness. Default: 0,
	// browsers and shared caches alike get the remaining freshness.
	BrowserMaxAge time.Duration
	// NoStaleWhileRevalidate leaves stale-while-revalidate out. Default:
	// false: stale-while-revalidate is the value's stale window
	// (cache.Options.StaleFor), when it has one.
	NoStaleWhileRevalidate bool
	// StaleIfError, when > 0, is sent as stale-if-error. Default: 0, none.
	StaleIfError time.Duration
	// Immutable adds immutable (for values that never change under their
	// key: versioned assets). Default: false.
	Immutable bool
}

// Control is the Control for a response built at now from a value whose
// instants are info: max-age (and, with BrowserMaxAge, s-maxage) is
// what is left of its freshness, stale-while-revalidate its stale window
// (what is left of it, for a value already stale, served with max-age=0).
// The zero Info (a failed load) gives no-store.
func (p Policy) Control(info cache.Info, now time.Time) Control {
	if info.FreshUntil.IsZero() {
		return Control{NoStore: true}
	}
	fresh := max(info.FreshUntil.Sub(now), 0)
	c := Control{Public: !p.Private, Private: p.Private, MaxAge: fresh, StaleIfError: p.StaleIfError, Immutable: p.Immutable}
	if p.BrowserMaxAge > 0 && p.BrowserMaxAge < fresh {
		c.MaxAge = p.BrowserMaxAge
		if !p.Private {
			c.SMaxAge = fresh
		}
	}
	if !p.NoStaleWhileRevalidate {
		staleFrom := info.FreshUntil
		if now.After(staleFrom) {
			staleFrom = now
		}
		c.StaleWhileRevalidate = max(info.StaleUntil.Sub(staleFrom), 0)
	}
	return c
}

// Write sets h's caching fields for a response built at now from a value
// whose instants are info: p.Control(info, now).Write(h, now).
func (p Policy) Write(h http.Header, info cache.Info, now time.Time) error {
	return p.Control(info, now).Write(h, now)
}
