package routerstats_test

import (
	"fmt"

	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
)

// An LSN prints as PostgreSQL prints a pg_lsn; a collector reads a
// Router's Stats without importing dbrouter (or pgx).
func ExampleLSN() {
	fmt.Println(routerstats.LSN(0x16_B374D848))
	var st routerstats.Stats // from (*dbrouter.Router).Stats()
	fmt.Println(len(st.Replicas), st.Primary.Pool.EmptyAcquires)
	// Output:
	// 16/B374D848
	// 0 0
}
