package httpcache

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestETags(t *testing.T) {
	for _, c := range []struct {
		e    ETag
		want string
	}{
		{VersionETag("42"), `"42"`},
		{VersionETag("v7-abc"), `"v7-abc"`},
		{VersionETag("42").Weaken(), `W/"42"`},
		{ETag{}, ``},
	} {
		if got := c.e.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.e, got, c.want)
		}
	}
	// Versions that are not valid opaque tags are hashed: still strong,
	// still one tag per version.
	for _, v := range []string{`has "quotes"`, "has space", "", "\x7f"} {
		e := VersionETag(v)
		if e.Weak || !validOpaque(e.Opaque) || e.Opaque == "" || e.Opaque == v {
			t.Errorf("VersionETag(%q) = %+v", v, e)
		}
		if VersionETag(v) != e || VersionETag(v+"x") == e {
			t.Errorf("VersionETag(%q) is not a function of the version", v)
		}
	}
	a, b := HashETag([]byte("body")), HashETag([]byte("body"))
	if a != b || a.Weak || len(a.Opaque) != 22 || HashETag([]byte("bodY")) == a {
		t.Errorf("HashETag: %+v %+v", a, b)
	}
}

func TestCheck(t *testing.T) {
	lm := time.Date(2026, 2, 1, 10, 0, 0, 400e6, time.UTC)
	v := Validators{ETag: VersionETag("7"), LastModified: lm}
	weak := Validators{ETag: VersionETag("7").Weaken(), LastModified: lm}
	before, at, after := lm.Add(-time.Hour).Format(http.TimeFormat), lm.Format(http.TimeFormat), lm.Add(time.Hour).Format(http.TimeFormat)
	for _, c := range []struct {
		name   string
		method string
		h      map[string]string
		v      Validators
		want   int
	}{
		{"no preconditions", "GET", nil, v, 0},
		{"INM match", "GET", map[string]string{"If-None-Match": `"7"`}, v, 304},
		{"INM match HEAD", "HEAD", map[string]string{"If-None-Match": `"7"`}, v, 304},
		{"INM weak client tag matches (weak comparison)", "GET", map[string]string{"If-None-Match": `W/"7"`}, v, 304},
		{"INM weak server tag", "GET", map[string]string{"If-None-Match": `"7"`}, weak, 304},
		{"INM in list", "GET", map[string]string{"If-None-Match": `"1", W/"2" ,"7"`}, v, 304},
		{"INM no match", "GET", map[string]string{"If-None-Match": `"1", "2"`}, v, 0},
		{"INM star", "GET", map[string]string{"If-None-Match": `*`}, v, 304},
		{"INM malformed", "GET", map[string]string{"If-None-Match": `7`}, v, 0},
		{"INM unterminated", "GET", map[string]string{"If-None-Match": `"7`}, v, 0},
		{"INM on PUT", "PUT", map[string]string{"If-None-Match": `"7"`}, v, 412},
		{"INM star on PUT, absent: create", "PUT", map[string]string{"If-None-Match": `*`}, Validators{Absent: true}, 0},
		{"INM star on PUT, exists", "PUT", map[string]string{"If-None-Match": `*`}, v, 412},
		{"INM wins over IMS (13.2.2 step 3 before 4)", "GET", map[string]string{"If-None-Match": `"1"`, "If-Modified-Since": after}, v, 0},
		{"IMS not modified", "GET", map[string]string{"If-Modified-Since": at}, v, 304},
		{"IMS later", "GET", map[string]string{"If-Modified-Since": after}, v, 304},
		{"IMS modified", "GET", map[string]string{"If-Modified-Since": before}, v, 0},
		{"IMS invalid date ignored", "GET", map[string]string{"If-Modified-Since": "yesterday"}, v, 0},
		{"IMS ignored on POST", "POST", map[string]string{"If-Modified-Since": after}, v, 0},
		{"IMS without Last-Modified", "GET", map[string]string{"If-Modified-Since": after}, Validators{ETag: v.ETag}, 0},
		{"IM match", "PUT", map[string]string{"If-Match": `"7"`}, v, 0},
		{"IM weak fails strong comparison", "PUT", map[string]string{"If-Match": `W/"7"`}, v, 412},
		{"IM against weak server tag", "PUT", map[string]string{"If-Match": `"7"`}, weak, 412},
		{"IM mismatch", "PUT", map[string]string{"If-Match": `"6"`}, v, 412},
		{"IM star exists", "PUT", map[string]string{"If-Match": `*`}, v, 0},
		{"IM star absent", "PUT", map[string]string{"If-Match": `*`}, Validators{Absent: true}, 412},
		{"IM malformed", "PUT", map[string]string{"If-Match": `7`}, v, 412},
		{"IM on GET", "GET", map[string]string{"If-Match": `"6"`}, v, 412},
		{"IM wins over IUS (step 1 before 2)", "PUT", map[string]string{"If-Match": `"7"`, "If-Unmodified-Since": before}, v, 0},
		{"IUS modified since", "PUT", map[string]string{"If-Unmodified-Since": before}, v, 412},
		{"IUS unchanged", "PUT", map[string]string{"If-Unmodified-Since": at}, v, 0},
		{"IUS invalid date ignored", "PUT", map[string]string{"If-Unmodified-Since": "soon"}, v, 0},
		{"IM passes, INM matches on GET", "GET", map[string]string{"If-Match": `"7"`, "If-None-Match": `"7"`}, v, 304},
		{"IUS fails before INM", "GET", map[string]string{"If-Unmodified-Since": before, "If-None-Match": `"7"`}, v, 412},
	} {
		r := httptest.NewRequest(c.method, "/x", nil)
		for k, val := range c.h {
			r.Header.Set(k, val)
		}
		if got := Check(r, c.v); got != c.want {
			t.Errorf("%s: Check = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestConditionalServer answers through a real server: the 304 has no
// body, keeps the caching fields and Vary, and drops the representation
// metadata.
func TestConditionalServer(t *testing.T) {
	lm := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	v := Validators{ETag: VersionETag("v3"), LastModified: lm}
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Vary", "Accept-Encoding")
		if err := (Control{Public: true, MaxAge: time.Minute}).Write(h, time.Now()); err != nil {
			t.Error(err)
		}
		if Conditional(w, r, v) {
			return
		}
		calls++
		io.WriteString(w, `{"id":1}`)
	}))
	defer srv.Close()

	get := func(method string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get("GET")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"id":1}` || resp.Header.Get("Etag") != `"v3"` || resp.Header.Get("Last-Modified") != lm.Format(http.TimeFormat) {
		t.Fatalf("200: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	for _, method := range []string{"GET", "HEAD"} {
		for _, cond := range [][]string{{"If-None-Match", `"v3"`}, {"If-Modified-Since", lm.Format(http.TimeFormat)}} {
			resp := get(method, cond...)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != 304 || len(body) != 0 {
				t.Fatalf("%s %v: %d with %d body bytes", method, cond, resp.StatusCode, len(body))
			}
			if h.Get("Etag") != `"v3"` || h.Get("Vary") != "Accept-Encoding" || h.Get("Date") == "" || h.Get("Expires") == "" {
				t.Fatalf("%s %v: 304 lost a required field: %v", method, cond, h)
			}
			checkCaching(t, h)
			if h.Get("Content-Type") != "" || h.Get("Content-Length") != "" || h.Get("Last-Modified") != "" {
				t.Fatalf("%s %v: 304 kept representation metadata: %v", method, cond, h)
			}
		}
	}
	resp = get("PUT", "If-Match", `"v2"`)
	resp.Body.Close()
	if resp.StatusCode != 412 {
		t.Fatalf("stale If-Match: %d, want 412", resp.StatusCode)
	}
	if calls != 1 {
		t.Fatalf("handler body ran %d times, want 1", calls)
	}
}
