package queuepg_test

import (
	"context"
	"log"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuepg"
)

type Receipt struct{ PaymentID int64 }

// EnqueueTx puts the job in the same transaction as the business write:
// the receipt job exists if and only if the payment committed.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	backend, err := queuepg.New(queuepg.Options{Pool: pool})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	if err := backend.Migrate(ctx); err != nil { // once, at deploy time
		log.Fatal(err)
	}

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, "INSERT INTO payments (amount_cents) VALUES (500) RETURNING id").Scan(&id); err != nil {
			return err
		}
		_, err := backend.EnqueueTx(ctx, tx, "receipts", "receipt:send", Receipt{PaymentID: id}, queue.EnqueueOptions{})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	// A worker (usually another process) runs the jobs.
	worker, err := queue.NewWorker(queue.WorkerOptions{Backend: backend, Queues: map[string]queue.Options{"receipts": {Concurrency: 8}}})
	if err != nil {
		log.Fatal(err)
	}
	queue.Handle(worker, "receipt:send", func(ctx context.Context, job *queue.Job[Receipt]) error {
		log.Printf("sending the receipt of payment %d", job.Args.PaymentID)
		return nil
	})
	if err := worker.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer worker.Shutdown(ctx)
}
