package httpx

import (
	"fmt"
	"net/http"
	"time"
)

// Carrier is how a middleware carries a token between a client's
// requests: a response (and request) header and/or a cookie. dbrouter's
// and shard's HTTPOptions convert to it, so their defaults, checks and
// cookie attributes are one.
type Carrier struct {
	Cookie, Header, Path string
	MaxAge               time.Duration
	NoCookie, NoHeader   bool
	Insecure             bool
}

// WithDefaults fills c's zero fields (cookie and header are the names to
// use) and says what is wrong with the result, naming the option ("" when
// nothing).
func (c Carrier) WithDefaults(cookie, header string) (Carrier, string) {
	if c.Cookie == "" {
		c.Cookie = cookie
	}
	if c.Header == "" {
		c.Header = header
	}
	if c.MaxAge == 0 {
		c.MaxAge = 5 * time.Minute
	}
	if c.Path == "" {
		c.Path = "/"
	}
	switch {
	case c.NoCookie && c.NoHeader:
		return c, "NoCookie and NoHeader leave nothing to carry the token"
	case c.MaxAge < time.Second:
		return c, fmt.Sprintf("MaxAge is %v, want at least 1s", c.MaxAge)
	}
	return c, ""
}

// Write puts v on the response: in the header and in the cookie
// (HttpOnly, SameSite=Lax, Secure unless Insecure), each unless turned
// off.
func (c Carrier) Write(w http.ResponseWriter, v string) {
	if !c.NoHeader {
		w.Header().Set(c.Header, v)
	}
	if !c.NoCookie {
		http.SetCookie(w, &http.Cookie{Name: c.Cookie, Value: v, Path: c.Path,
			MaxAge: int(c.MaxAge / time.Second), HttpOnly: true, Secure: !c.Insecure, SameSite: http.SameSiteLaxMode})
	}
}
