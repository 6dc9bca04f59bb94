package queueredis

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
)

// EnqueueMany is one script (one round trip) per queue of the batch,
// however many jobs, on Redis and on Redis Cluster.
func TestEnqueueManyRoundTrips(t *testing.T) {
	for _, cluster := range []bool{false, true} {
		t.Run(map[bool]string{false: "Standalone", true: "Cluster"}[cluster], func(t *testing.T) {
			var client redis.UniversalClient
			prefix := "queue"
			if cluster {
				c := testinfra.RedisCluster(t)
				client, prefix = c.Client, c.Prefix+"queue"
			} else {
				client = testinfra.Redis(t).Client
			}
			rt := &testinfra.RoundTrips{}
			client.AddHook(rt)
			b := newBackend(t, Options{Client: client, Prefix: prefix})
			c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
			ctx := context.Background()
			jobs := func(qs []string, n int) []queue.EnqueueRequest {
				out := make([]queue.EnqueueRequest, n)
				for i := range out {
					out[i] = queue.EnqueueRequest{Queue: qs[i%len(qs)], Kind: "k", Args: i,
						Options: queue.EnqueueOptions{UniqueKey: fmt.Sprint("u", n, "-", i%(n-1))}} // the last one is a duplicate
				}
				return out
			}
			// Load the script on the nodes of the queues (a node that lacks it
			// answers NOSCRIPT, and go-redis sends it: one more round trip).
			if _, err := c.EnqueueMany(ctx, jobs([]string{"a", "b", "c", "d"}, 8)...); err != nil {
				t.Fatal(err)
			}
			for _, qs := range [][]string{{"a"}, {"b", "c", "d"}} {
				rt.Reset()
				res, err := c.EnqueueMany(ctx, jobs(qs, 999)...)
				if err != nil || res[997].Err != nil {
					t.Fatalf("EnqueueMany: %v %+v", err, res[997])
				}
				if len(qs) == 1 && (!errors.Is(res[998].Err, queue.ErrDuplicate) || res[998].ID != res[0].ID) {
					t.Fatalf("the last job: %+v, want a duplicate of %s", res[998], res[0].ID)
				}
				if n := rt.Load(); n != int64(len(qs)) {
					t.Fatalf("EnqueueMany of 999 jobs on %d queues took %d round trips, want %d", len(qs), n, len(qs))
				}
			}
		})
	}
}
