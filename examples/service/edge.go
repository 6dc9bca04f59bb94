package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/httpcache"
	"github.com/scalekit-go/scalekit/queue"
)

// The edge cache (a CDN, or Varnish with the xkey module): GET /users/{id}
// and GET /posts say exactly how long they may be cached, from the user
// cache's own instants, carry ETags (304s) and surrogate keys ("user:<id>",
// "posts"); PUT /users/{id} honours If-Match (412) and enqueues, in its own
// transaction, the job that writes the user's new copy through to the
// cache and then purges "user:<id>": both happen exactly when the write
// commits, at least once (retried while Redis or the edge is down), in
// that order.

// userPolicy: the edge keeps a user as long as the cache would (s-maxage
// = the entry's freshness left, stale-while-revalidate = its stale
// window); browsers, which cannot be purged, 10 seconds.
var userPolicy = httpcache.Policy{BrowserMaxAge: 10 * time.Second}

// postsControl: a page of posts is not cached here, only at the edge,
// which is purged by "posts" and by each author's key.
var postsControl = httpcache.Control{Public: true, MaxAge: 10 * time.Second, SMaxAge: time.Minute, StaleWhileRevalidate: 30 * time.Second}

// buildEdgeCache makes the surrogate-key middleware and, with
// Config.PurgeURL, the Varnish purger.
func (a *app) buildEdgeCache(context.Context) error {
	var err error
	if a.keys, err = httpcache.NewKeys(httpcache.KeysOptions{}); err != nil {
		return err
	}
	if a.cfg.PurgeURL != "" {
		a.purger, err = httpcache.NewVarnishPurger(httpcache.VarnishPurgerOptions{URL: a.cfg.PurgeURL, Logger: a.log})
	}
	return err
}

// userETag is the strong ETag of a user's version.
func userETag(u User) httpcache.ETag { return httpcache.VersionETag(strconv.FormatInt(u.Version, 10)) }

// writeUser answers GET /users/{id} with c (found by the cache, whose
// instants are info; readThrough: read past the cache for a client with a
// newer write token, so for that client only).
func (a *app) writeUser(w http.ResponseWriter, r *http.Request, c userCopy, info cache.Info, readThrough bool) {
	httpcache.AddKeys(r.Context(), "user:"+strconv.FormatInt(c.User.ID, 10))
	ctl := userPolicy.Control(info, time.Now())
	if readThrough {
		ctl = httpcache.Control{Private: true, NoCache: true}
	}
	if err := ctl.Write(w.Header(), time.Now()); err != nil {
		a.log.ErrorContext(r.Context(), "caching fields", "error", err)
	}
	if httpcache.Conditional(w, r, httpcache.Validators{ETag: userETag(c.User)}) {
		return
	}
	writeJSON(w, http.StatusOK, c.User)
}

// writePosts answers GET /posts: tagged with "posts" and every author.
func (a *app) writePosts(w http.ResponseWriter, r *http.Request, posts []Post) {
	httpcache.AddKeys(r.Context(), "posts")
	for _, p := range posts {
		httpcache.AddKeys(r.Context(), "user:"+strconv.FormatInt(p.AuthorID, 10))
	}
	body, err := json.Marshal(posts)
	if err != nil {
		http.Error(w, "cannot encode the posts", http.StatusInternalServerError)
		return
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if err := postsControl.Write(h, time.Now()); err != nil {
		a.log.ErrorContext(r.Context(), "caching fields", "error", err)
	}
	if httpcache.Conditional(w, r, httpcache.Validators{ETag: httpcache.HashETag(body)}) {
		return
	}
	w.Write(body)
}

// errPrecondition is a PUT whose If-Match names another version.
var errPrecondition = errors.New("precondition failed")

// userUpdateFor is what PUT /users/{id} runs with its write: r's
// preconditions against the row as it is, and the user's invalidation
// (a userChanged job) enqueued in the write's transaction.
func (a *app) userUpdateFor(r *http.Request, id int64) userUpdate {
	return userUpdate{
		check: func(old User) error {
			if httpcache.Check(r, httpcache.Validators{ETag: userETag(old)}) == http.StatusPreconditionFailed {
				return errPrecondition
			}
			return nil
		},
		inTx: func(ctx context.Context, tx pgx.Tx) error {
			args := userChanged{ID: id}
			if pg, ok := a.userQueue(id); ok && tx != nil { // the user's cluster's queue when sharded
				_, err := pg.EnqueueTx(ctx, tx, "invalidations", userChangedKind, args, queue.EnqueueOptions{Metadata: requestMetadata(ctx)})
				return err
			}
			_, err := a.jobs.Enqueue(ctx, "invalidations", userChangedKind, args, queue.EnqueueOptions{})
			return err
		},
	}
}

// userChangedKind is the kind of the job a user's write enqueues in its
// transaction: it reads the user as the primary has it now and writes it
// through to the cache (L1 and Redis), then purges "user:<id>" from the
// edge. It commits exactly when the write does and runs at least once:
// while Redis is down the cache write fails and the queue retries the job,
// and the edge is purged only once the cache holds the new copy, so the
// edge's refetch cannot take the old one back. The primary, not a
// replica: a replica that has not replayed the write yet would put the old
// row back into the cache (deleting the copy instead would let the next
// reader do just that). putUser's own write-through keeps the cache right
// at once when Redis is up; this job is what holds when it was not.
const userChangedKind = "user.changed"

type userChanged struct {
	ID int64 `json:"id"`
}

// handleUserChanged registers the userChanged jobs' handler with w (the
// worker, and each other cluster's when sharded).
func (a *app) handleUserChanged(w *queue.Worker) error {
	return queue.Handle(w, userChangedKind, func(ctx context.Context, j *queue.Job[userChanged]) error {
		id := strconv.FormatInt(j.Args.ID, 10)
		c, err := a.repo.user(dbrouter.Primary(ctx), j.Args.ID)
		switch {
		case errors.Is(err, cache.ErrNotFound):
			err = a.userNS.Delete(ctx, id)
		case err == nil:
			err = a.userNS.Set(ctx, id, c)
		}
		if err != nil {
			return err
		}
		if a.purger != nil {
			if err := a.purger.Purge(ctx, []string{"user:" + id}); err != nil {
				return err
			}
		}
		a.usersChanged.Add(1)
		return nil
	})
}
