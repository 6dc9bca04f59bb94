package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
)

type userJSON struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Email   string `json:"email"`
	Version int64  `json:"version"`
}

// read: GET /users/{id}. When this client wrote the user before, the
// version read must be at least the one its write returned.
func (g *generator) read(ctx context.Context, vu *vuser, uid int) result {
	wrote := vu.version.Load()
	r := vu.send(ctx, g, http.MethodGet, "/users/"+strconv.Itoa(uid), nil)
	if r.err != nil || r.status != http.StatusOK {
		return r
	}
	var u userJSON
	if err := json.Unmarshal(r.body, &u); err != nil || u.ID != int64(uid) || u.Name == "" || u.Email == "" {
		r.problem, r.detail = "200 without the user asked for", fmt.Sprintf("GET /users/%d: %s", uid, excerpt(r.body))
		return r
	}
	if wrote > 0 {
		g.ryw.checked.Add(1)
		if u.Version < wrote {
			g.ryw.stale.Add(1)
			r.problem = "stale read (read-your-writes)"
			r.detail = fmt.Sprintf("GET /users/%d: this client's write returned version %d, the read version %d", uid, wrote, u.Version)
		}
	}
	return r
}

// write: PUT /users/{id}, then the same client reads the user back at once
// (as a client showing what it saved does): the read must return at least
// the version the write did. The read-back makes the read-your-writes
// check run on every write, at any rate; a stale one makes the write
// unexpected. The cookie jar and vu's newest token carry the
// read-your-writes token.
func (g *generator) write(ctx context.Context, vu *vuser, uid int) result {
	name := "Loadgen " + strconv.FormatUint(rand.Uint64()%1e9, 36)
	body, _ := json.Marshal(map[string]string{"name": name, "email": fmt.Sprintf("user%d@example.com", uid)})
	r := vu.send(ctx, g, http.MethodPut, "/users/"+strconv.Itoa(uid), body)
	if r.err != nil || r.status != http.StatusOK {
		return r
	}
	var u userJSON
	if err := json.Unmarshal(r.body, &u); err != nil || u.ID != int64(uid) || u.Name != name {
		r.problem, r.detail = "200 without the user written", fmt.Sprintf("PUT /users/%d name %q: %s", uid, name, excerpt(r.body))
		return r
	}
	for v := vu.version.Load(); u.Version > v && !vu.version.CompareAndSwap(v, u.Version); v = vu.version.Load() {
	}
	back := vu.send(ctx, g, http.MethodGet, "/users/"+strconv.Itoa(uid), nil)
	var got userJSON
	if back.err != nil || back.status != http.StatusOK || json.Unmarshal(back.body, &got) != nil || got.ID != int64(uid) {
		return r // no answer to check (a 429, a timeout): the write stands on its own
	}
	g.ryw.checked.Add(1)
	g.ryw.readBacks.Add(1)
	if got.Version < u.Version {
		g.ryw.stale.Add(1)
		r.problem = "stale read-back (read-your-writes)"
		r.detail = fmt.Sprintf("PUT /users/%d returned version %d; this client's GET right after read version %d", uid, u.Version, got.Version)
	}
	return r
}

// posts: GET /posts?limit=N; every post has its author.
func (g *generator) posts(ctx context.Context, vu *vuser) result {
	r := vu.send(ctx, g, http.MethodGet, "/posts?limit="+strconv.Itoa(postsLimit), nil)
	if r.err != nil || r.status != http.StatusOK {
		return r
	}
	var posts []struct {
		ID     int64  `json:"id"`
		Title  string `json:"title"`
		Author struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"author"`
	}
	if err := json.Unmarshal(r.body, &posts); err != nil || len(posts) > postsLimit {
		r.problem, r.detail = "200 without a page of posts", "GET /posts: "+excerpt(r.body)
		return r
	}
	for _, p := range posts {
		if p.Author.ID == 0 || p.Author.Name == "" {
			r.problem, r.detail = "post without its author", fmt.Sprintf("GET /posts: post %d: %s", p.ID, excerpt(r.body))
			break
		}
	}
	return r
}
