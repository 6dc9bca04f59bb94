package shard

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scalekit-go/scalekit/internal/poll"
)

// A move to a cluster whose replica has not replayed the copy: after the
// flip, reads of the moved virtual shard through Route.Context go to the
// target's primary (the floor) and find a row written on the source before
// the move, with the writer's source token or with none, where a read
// without the floor goes to the paused replica and misses it. Once the
// replica replays past the floor, the vshard's reads go to it again.
func TestMoveFloorReadsTarget(t *testing.T) {
	const vs = 4
	first := EvenMap(1, vs, "c2") // c1, with a replica, is the target
	e := newMoveEnv(t, 2, true, vs, first)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := e.clusters["c1"]

	// A user writes on c2 through a session, and keeps c2's token.
	k := Int64(7)
	sctx := e.router.WithSessions(ctx, nil)
	rt, err := e.router.For(k)
	if err != nil || rt.Cluster != "c2" || !rt.Floor().IsZero() {
		t.Fatalf("before the move: %+v, %v", rt, err)
	}
	if _, err := rt.Router.Exec(rt.Context(sctx), "INSERT INTO items VALUES ($1, $2, 41)", int64(7), rt.VShard); err != nil {
		t.Fatal(err)
	}
	toks, changed, err := e.router.SessionTokens(sctx)
	if err != nil || !changed || toks["c2"].IsZero() || len(toks) != 1 {
		t.Fatalf("SessionTokens = %v, %v, %v", toks, changed, err)
	}

	// c1's replica stops replaying: it will not see the copied rows.
	if err := b.pg.WaitReplicaCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.pg.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = b.pg.ResumeReplay(context.Background())
		}
	}()
	res, err := e.mover.Move(ctx, rt.VShard, "c1")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.store.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	floor := stored.Floors[rt.VShard]
	if stored.Version != res.Version || floor.LSN == 0 || floor.Timeline == 0 || len(stored.Floors) != 1 {
		t.Fatalf("stored map version %d (moved at %d), floors %v: want the moved vshard's floor", stored.Version, res.Version, stored.Floors)
	}
	rt2, err := e.router.For(k)
	if err != nil || rt2.Cluster != "c1" || rt2.Floor().String() != floor.String() {
		t.Fatalf("after the move: %+v, %v (floor %v)", rt2, err, floor)
	}
	// dbrouter's monitor has seen the paused replica behind the floor.
	poll.Until(t, 10*time.Second, "c1's monitor reads the replica", func() bool {
		st := b.router.Stats()
		return len(st.Replicas) == 1 && st.Replicas[0].Healthy && !st.Replicas[0].LastCheck.IsZero() && st.Replicas[0].ReplayLSN < floor.LSN
	})

	read := func(ctx context.Context) (int64, error) {
		var val int64
		err := rt2.Router.QueryRow(ctx, "SELECT val FROM items WHERE id = $1 AND vshard = $2", int64(7), rt2.VShard).Scan(&val)
		return val, err
	}
	// The control: without the floor the read goes to the paused replica,
	// which misses the row.
	before := b.router.Stats().TokenPrimary
	if _, err := read(ctx); !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("a read without the floor: %v, want ErrNoRows from the paused replica", err)
	}
	if got := b.router.Stats().TokenPrimary; got != before {
		t.Fatalf("a read without the floor counted TokenPrimary (%d -> %d)", before, got)
	}
	// Through Route.Context: with the user's c2 token, and with none.
	for name, c := range map[string]context.Context{
		"c2 token": e.router.WithSessions(ctx, toks),
		"none":     ctx,
	} {
		before := b.router.Stats().TokenPrimary
		val, err := read(rt2.Context(c))
		if err != nil || val != 41 {
			t.Fatalf("%s: read through Route.Context = %d, %v, want 41", name, val, err)
		}
		if got := b.router.Stats().TokenPrimary; got != before+1 {
			t.Fatalf("%s: TokenPrimary %d -> %d, want the read on c1's primary", name, before, got)
		}
	}

	// The replica catches up: the vshard's reads go to it again.
	if err := b.pg.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	resumed = true
	poll.Until(t, 30*time.Second, "c1's replica replays the floor", func() bool {
		st := b.router.Stats()
		return st.Replicas[0].Healthy && st.Replicas[0].ReplayLSN >= floor.LSN
	})
	before = b.router.Stats().TokenPrimary
	for range 5 {
		if val, err := read(rt2.Context(ctx)); err != nil || val != 41 {
			t.Fatalf("after the catch-up: %d, %v", val, err)
		}
	}
	if got := b.router.Stats().TokenPrimary; got != before {
		t.Fatalf("after the catch-up the reads still went to the primary (TokenPrimary %d -> %d)", before, got)
	}
	// The next move drops a floor every replica has passed.
	if _, err := e.mover.Move(ctx, rt.VShard, "c2"); err != nil {
		t.Fatal(err)
	}
	back, err := e.store.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := back.Floors[rt.VShard]; !ok || f.String() == floor.String() || len(back.Floors) != 1 {
		t.Fatalf("after moving back: floors %v, want only c2's new floor", back.Floors)
	}
}
