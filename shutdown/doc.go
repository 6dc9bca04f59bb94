// Package shutdown drains a service with zero dropped requests. On SIGTERM
// or SIGINT (or Trigger) a Coordinator fails readiness first, waits
// DrainDelay so load balancers stop sending, shuts every registered server
// and worker down in parallel (http.Server.Shutdown finishes requests in
// flight), then closes resources (pools, clients) in reverse registration
// order, each within StepTimeout, all within Timeout, which should stay
// below the orchestrator's grace period. A second signal exits at once.
// Every step is logged with its duration; errors are joined and returned.
//
//	c, err := shutdown.New(shutdown.Options{Readiness: probes, DrainDelay: 5 * time.Second})
//	c.RegisterServer("http", srv) // http.Server, queue workers: Shutdown(ctx) in parallel
//	c.RegisterCloseFunc("db", func(ctx context.Context) error { pool.Close(); return nil })
//	c.RegisterCloser("cache", users) // an io.Closer; closes before db
//	err = c.Wait(ctx) // blocks until SIGTERM, then runs the whole sequence
//
// Register with RegisterServer what has Shutdown(ctx) error, with
// RegisterCloser what has Close() error, and with RegisterCloseFunc any
// other way to close (a Close(ctx) error method value, or a Close() with
// no result wrapped in a func).
package shutdown
