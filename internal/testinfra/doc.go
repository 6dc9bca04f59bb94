// Package testinfra starts real servers for tests: a throwaway redis-server,
// a 3-master Redis Cluster, and a PostgreSQL primary with a real streaming
// replica. They run from the binaries on the machine, in temp dirs, on free
// 127.0.0.1 ports, and die with the test binary.
//
// The fixtures take a testing.TB and clean up after the test:
//
//	func TestMain(m *testing.M) { testinfra.Main(m) } // share slow servers
//
//	func TestX(t *testing.T) {
//		r := testinfra.Redis(t)          // own server; r.Stop(), r.Start(), r.Pause()
//		c := testinfra.RedisCluster(t)   // shared cluster; use c.Prefix on keys
//		pg := testinfra.Postgres(t)      // shared primary+replica; own database
//		pg.PauseReplay()                 // make the replica lag
//	}
//
// When a binary is missing the fixture skips the test with the reason;
// with SCALEKIT_REQUIRE_SERVERS=1 (CI) it fails instead, so a run can never
// pass by skipping.
//
// The servers themselves come from the public package scalekittest
// (StartRedis, StartRedisCluster, StartPostgres, re-exported here); users
// start the same servers for their own integration tests with it.
//
// PostgreSQL refuses to run as root: when this process is root, initdb,
// pg_basebackup and postgres run as the "postgres" user. The binaries come
// from $SCALEKIT_PG_BINDIR, `pg_config --bindir` or /usr/lib/postgresql/*/bin.
package testinfra
