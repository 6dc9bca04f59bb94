package testinfra

import "github.com/scalekit-go/scalekit/scalekittest"

// The servers come from the public package scalekittest; testinfra adds the
// test fixtures (Redis, RedisCluster, Postgres), shared servers (Main) and
// the leak check on top.
type (
	// RedisOptions configures StartRedis.
	RedisOptions = scalekittest.RedisOptions
	// RedisServer is a running redis-server.
	RedisServer = scalekittest.RedisServer
	// ClusterOptions configures StartRedisCluster.
	ClusterOptions = scalekittest.ClusterOptions
	// RedisClusterServer is a running Redis Cluster.
	RedisClusterServer = scalekittest.RedisClusterServer
	// PostgresOptions configures StartPostgres.
	PostgresOptions = scalekittest.PostgresOptions
	// PostgresCluster is a PostgreSQL primary with a streaming replica.
	PostgresCluster = scalekittest.PostgresCluster
	// PGServer is one postgres process of a PostgresCluster.
	PGServer = scalekittest.PGServer
	// StopMode is how PGServer.Stop stops a server.
	StopMode = scalekittest.StopMode
	// VarnishOptions configures StartVarnish.
	VarnishOptions = scalekittest.VarnishOptions
	// VarnishServer is a running varnishd.
	VarnishServer = scalekittest.VarnishServer
)

// The stop modes and the replica's slot, as in scalekittest.
const (
	StopFast        = scalekittest.StopFast
	StopImmediate   = scalekittest.StopImmediate
	ReplicationSlot = scalekittest.ReplicationSlot
)

// ErrMissingBinary is scalekittest.ErrMissingBinary.
var ErrMissingBinary = scalekittest.ErrMissingBinary

// StartRedis is scalekittest.StartRedis.
var StartRedis = scalekittest.StartRedis

// StartRedisCluster is scalekittest.StartRedisCluster.
var StartRedisCluster = scalekittest.StartRedisCluster

// StartPostgres is scalekittest.StartPostgres.
var StartPostgres = scalekittest.StartPostgres

// StartVarnish is scalekittest.StartVarnish.
var StartVarnish = scalekittest.StartVarnish
