// Package scalekittest starts real servers for integration tests and local
// runs, as net/http/httptest does for HTTP: a throwaway redis-server, a Redis
// Cluster of three masters, a PostgreSQL primary with a real streaming
// replica, a nats-server with JetStream (StartNATS), a varnishd with the
// xkey module in front of an origin (StartVarnish) and a headless
// Chromium with its DevTools endpoint (StartChromium, for browser tests),
// from the binaries on the machine, in temp dirs, on free 127.0.0.1
// ports.
//
//	pg, err := scalekittest.StartPostgres(ctx, scalekittest.PostgresOptions{})
//	if err != nil { ... }            // errors.Is(err, ErrMissingBinary): install postgresql
//	defer pg.Close()
//	pg.CreateDatabase(ctx, "app")
//	primary, replica, err := pg.NewPools(ctx, "app")
//	pg.PauseReplay(ctx)               // make the replica lag; ResumeReplay to catch up
//	pg.Replica.Stop(scalekittest.StopImmediate) // a crash; Start brings it back
//
// The servers are for tests and development: fsync is off, nothing is kept
// after Close, and children die with the process that started them
// (Linux). Stop, Start, Pause (SIGSTOP) and Resume inject outages.
//
// PostgreSQL refuses to run as root: when this process is root, initdb,
// pg_basebackup and postgres run as the "postgres" user. The binaries come
// from $SCALEKIT_PG_BINDIR, `pg_config --bindir` or
// /usr/lib/postgresql/*/bin; redis-server and redis-cli from PATH;
// nats-server from PATH or /usr/sbin; varnishd from PATH or /usr/sbin (run
// with -j none, which it needs under root, and no management port), with
// the xkey module of varnish-modules; Chromium from $SCALEKIT_CHROMIUM,
// or chromium, chromium-browser or google-chrome on PATH or in /usr/bin
// (headless, --no-sandbox under root, a fresh profile; the package
// imports no DevTools client: connect chromedp or rod to DevToolsURL). A
// missing binary gives an error wrapping ErrMissingBinary that says what
// to install.
package scalekittest
