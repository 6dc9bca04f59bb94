package scalekittest_test

import (
	"context"
	"log"

	"github.com/scalekit-go/scalekit/scalekittest"
)

// An integration test's servers: Redis and a PostgreSQL primary with a
// streaming replica, gone after Close.
func Example() {
	ctx := context.Background()
	redisSrv, err := scalekittest.StartRedis(ctx, scalekittest.RedisOptions{})
	if err != nil {
		log.Fatal(err) // errors.Is(err, scalekittest.ErrMissingBinary): apt-get install redis-server
	}
	defer redisSrv.Close()
	rdb := redisSrv.NewClient(0)
	defer rdb.Close()

	pg, err := scalekittest.StartPostgres(ctx, scalekittest.PostgresOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer pg.Close()
	if err := pg.CreateDatabase(ctx, "app"); err != nil {
		log.Fatal(err)
	}
	primary, replica, err := pg.NewPools(ctx, "app")
	if err != nil {
		log.Fatal(err)
	}
	defer primary.Close()
	defer replica.Close()

	// Outages on demand: the replica stops as in a crash, then returns.
	if err := pg.Replica.Stop(scalekittest.StopImmediate); err != nil {
		log.Fatal(err)
	}
	if err := pg.Replica.Start(ctx); err != nil {
		log.Fatal(err)
	}
}
