package shard_test

import (
	"context"
	"errors"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/shard"
)

// The map lives in a table on a config database; every instance watches
// it, and a Mover moves virtual shard 17 to cluster b while traffic runs.
func ExampleMover() {
	ctx := context.Background()
	config, _ := pgxpool.New(ctx, "postgres://config-db/config")
	a, _ := dbrouter.Open(ctx, "postgres://pg-a/app", []string{"postgres://pg-a-replica/app"}, dbrouter.Options{})
	b, _ := dbrouter.Open(ctx, "postgres://pg-b/app", nil, dbrouter.Options{})

	store, err := shard.OpenPGMap(ctx, config, shard.StoreOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	m, err := store.Current(ctx)
	if errors.Is(err, shard.ErrNoMap) { // the first instance ever
		m = shard.EvenMap(1, shard.DefaultVirtualShards, "a", "b")
		err = store.Publish(ctx, m) // ErrVersionConflict if another got there first
	}
	if err != nil {
		log.Fatal(err)
	}
	db, err := shard.New(shard.Options{Map: m, Clusters: map[string]*dbrouter.Router{"a": a, "b": b}})
	if err != nil {
		log.Fatal(err)
	}
	go store.Watch(ctx, db) // every published version, within milliseconds

	// Writes go through Do: one refused by a moving shard's fence runs
	// again on its new cluster.
	userID := int64(42)
	err = store.Do(ctx, db, shard.Int64(userID), func(ctx context.Context, rt shard.Route) error {
		_, err := rt.Router.Exec(ctx, "INSERT INTO posts (user_id, vshard, body) VALUES ($1, $2, $3)", userID, rt.VShard, "hello")
		return err
	})
	if err != nil {
		log.Print(err)
	}

	// An operator's tool (once per deployment: Migrate).
	mv, err := shard.NewMover(shard.MoverOptions{Store: store, Router: db,
		ConnStrings: map[string]string{"a": "host=pg-a dbname=app user=mover"},
		Tables:      []shard.Table{{Name: "posts", KeyColumns: []string{"user_id"}}}})
	if err != nil {
		log.Fatal(err)
	}
	if err := mv.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	res, err := mv.Move(ctx, 17, "b") // after a crash, the same call resumes
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("vshard 17 on b under map version %d; writes fenced %v", res.Version, res.Fenced)
}
