package dbrouterotel_test

import (
	"context"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/otel/dbrouterotel"
)

// Put the routing decision on the query spans otelpgx makes.
func Example() {
	ctx := context.Background()
	rt, _ := dbrouterotel.New(dbrouterotel.Options{})
	r, err := dbrouter.Open(ctx, "postgres://app@primary/app", []string{"postgres://app@replica-1/app"}, dbrouter.Options{
		RouteTracer: rt,
		ConfigurePool: func(_ string, cfg *pgxpool.Config) error {
			cfg.ConnConfig.Tracer = rt.Compose(otelpgx.NewTracer()) // otelpgx's spans, the decision on them
			return nil
		},
	})
	if err != nil {
		return
	}
	defer r.Close()
	var n int
	_ = r.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n) // its span: target replica, reason any
}
