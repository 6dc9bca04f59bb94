package scalekittest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterOptions configures StartRedisCluster. The zero value makes three
// masters and no replicas.
type ClusterOptions struct {
	// Masters is the number of master nodes, 3 to 16. Default: 3.
	Masters int
	// StartTimeout bounds the whole start-up, cluster creation included.
	// Default: 30s.
	StartTimeout time.Duration
}

// RedisClusterServer is a Redis Cluster of masters on 127.0.0.1, every
// node a RedisServer with cluster-enabled yes.
type RedisClusterServer struct {
	// Nodes are the masters, in creation order. A node can be stopped and
	// started to simulate a partial outage.
	Nodes []*RedisServer
}

// StartRedisCluster starts the masters, joins them with
// `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes` and
// waits until every node reports cluster_state:ok and all 16384 slots are
// served. It returns an error wrapping ErrMissingBinary when redis-server or
// redis-cli is not installed.
func StartRedisCluster(ctx context.Context, opts ClusterOptions) (_ *RedisClusterServer, err error) {
	if opts.Masters == 0 {
		opts.Masters = 3
	}
	if opts.Masters < 3 || opts.Masters > 16 {
		return nil, fmt.Errorf("scalekittest: ClusterOptions.Masters must be 3..16, got %d", opts.Masters)
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	cli, err := lookBinary("redis-cli")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	c := &RedisClusterServer{}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	addrs := make([]string, 0, opts.Masters)
	for i := 0; i < opts.Masters; i++ {
		// The cluster bus port defaults to port+10000, which may be taken or
		// out of range: give it a free port of its own.
		bus, err := freePort()
		if err != nil {
			return nil, err
		}
		n, err := StartRedis(ctx, RedisOptions{Args: []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "3000",
			"--cluster-port", strconv.Itoa(bus),
		}})
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, n.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if err := (runAs{}).runTool(ctx, cli, args...); err != nil {
		return nil, err
	}
	for _, n := range c.Nodes {
		if err := waitFor(ctx, nil, "cluster node "+n.Addr(), func(ctx context.Context) error { return clusterOK(ctx, n.Addr()) }); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// clusterOK is nil once the node says cluster_state:ok with every slot
// assigned and ok.
func clusterOK(ctx context.Context, addr string) error {
	rc := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer rc.Close()
	info, err := rc.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
		return errors.New("cluster not ok yet: " + strings.Join(strings.Fields(info)[:min(4, len(strings.Fields(info)))], " "))
	}
	return nil
}

// Addrs are the nodes' host:port addresses.
func (c *RedisClusterServer) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// NewClient returns a go-redis cluster client seeded with every node. The
// caller closes it.
func (c *RedisClusterServer) NewClient() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ContextTimeoutEnabled: true})
}

// Close stops every node and removes their files. It is idempotent.
func (c *RedisClusterServer) Close() error {
	var errs []error
	for _, n := range c.Nodes {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
}
