package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// payment is a payment request a replay may re-send.
type payment struct {
	key      string
	body     []byte
	client   *http.Client
	replayed atomic.Bool   // a replay of it was sent
	done     chan struct{} // closed once the fields below are set
	status   int           // 0: no response
	resp     []byte
	hdr      bool // the response said Idempotent-Replayed: true (its replay overtook it)
}

// paymentRing holds the latest payments, for replays to pick from.
type paymentRing struct {
	mu   sync.Mutex
	buf  [1024]*payment
	n    int
	next int
}

func (r *paymentRing) add(p *payment) {
	r.mu.Lock()
	r.buf[r.next] = p
	r.next = (r.next + 1) % len(r.buf)
	r.n = min(r.n+1, len(r.buf))
	r.mu.Unlock()
}

func (r *paymentRing) random() *payment {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		return nil
	}
	return r.buf[rand.IntN(r.n)]
}

// pay: POST /payments with a new Idempotency-Key; replays may re-send it.
func (g *generator) pay(ctx context.Context, vu *vuser, uid int) result {
	p := &payment{
		key:    newUUID(),
		body:   fmt.Appendf(nil, `{"user_id":%d,"amount_cents":%d}`, uid, 100+rand.IntN(9900)),
		client: vu.client,
		done:   make(chan struct{}),
	}
	g.payments.add(p)
	r := g.send(ctx, vu.client, http.MethodPost, "/payments", p.body, "Idempotency-Key", p.key)
	if r.err == nil {
		p.status, p.resp, p.hdr = r.status, r.body, r.header.Get("Idempotent-Replayed") == "true"
	}
	close(p.done)
	switch {
	case r.err != nil:
	case r.status == http.StatusCreated:
		var out struct{ ID, Status string }
		if err := json.Unmarshal(r.body, &out); err != nil || out.ID == "" || out.Status == "" {
			r.problem, r.detail = "201 without a payment", "POST /payments: "+excerpt(r.body)
		}
	case r.status == http.StatusConflict && p.replayed.Load():
		r.expected = "409 overtaken by its own replay"
	}
	return r
}

// replayPayment re-sends an earlier payment's key and body; see
// compareReplay for what a replay must get.
func (g *generator) replayPayment(ctx context.Context, p *payment) result {
	p.replayed.Store(true)
	g.replay.sent.Add(1)
	r := g.send(ctx, p.client, http.MethodPost, "/payments", p.body, "Idempotency-Key", p.key)
	if r.err != nil {
		g.skipCompare("the replay got no response")
		return r
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		g.skipCompare("the original got no response in time")
		return r
	}
	switch {
	case p.status == 0:
		g.skipCompare("the original got no response")
	case !is2xx(p.status):
		g.skipCompare(fmt.Sprintf("the original got %d", p.status))
	case !is2xx(r.status):
		g.skipCompare(fmt.Sprintf("the replay got %d", r.status))
	default:
		g.replay.compared.Add(1)
		c := compareReplay(p.status, p.resp, p.hdr, r)
		if c.bodyDiffers {
			g.replay.bodyDiffers.Add(1)
		} else {
			g.replay.identical.Add(1)
		}
		if c.statusDiffers {
			g.replay.statusDiffers.Add(1)
		}
		if c.noHeader {
			g.replay.noHeader.Add(1)
		}
		if c.overtook {
			g.replay.overtook.Add(1)
		}
		if c.problem != "" {
			r.problem, r.detail = c.problem, fmt.Sprintf("POST /payments key %s: %s", p.key, c.detail)
		}
	}
	return r
}

// replayCheck is what compareReplay found.
type replayCheck struct {
	bodyDiffers, statusDiffers, noHeader bool
	overtook                             bool   // the replay ran and the original was answered from the store
	problem, detail                      string // the first problem's category; all of them
}

// compareReplay compares two successful answers to one key: the same
// bytes, the same status, and one of them (the one that did not run; the
// replay, unless it overtook the original) marked Idempotent-Replayed: true.
// Had both run, the bodies would differ (two charges).
func compareReplay(origStatus int, origBody []byte, origMarked bool, r result) replayCheck {
	var c replayCheck
	var details []string
	if !bytes.Equal(r.body, origBody) {
		c.bodyDiffers = true
		details = append(details, fmt.Sprintf("body %s, original %s", excerpt(r.body), excerpt(origBody)))
		c.problem = "replay body differs from the original"
	}
	if r.status != origStatus {
		c.statusDiffers = true
		details = append(details, fmt.Sprintf("status %d, original %d", r.status, origStatus))
		c.problem = cmp.Or(c.problem, "replay status differs from the original")
	}
	switch marked := r.header.Get("Idempotent-Replayed") == "true"; {
	case !marked && origMarked:
		c.overtook = true
	case !marked:
		c.noHeader = true
		details = append(details, "neither answer says Idempotent-Replayed: true")
		c.problem = cmp.Or(c.problem, "replay without Idempotent-Replayed: true")
	}
	c.detail = strings.Join(details, "; ")
	return c
}

func (g *generator) skipCompare(reason string) {
	g.mu.Lock()
	g.notCompared[reason]++
	g.mu.Unlock()
}
