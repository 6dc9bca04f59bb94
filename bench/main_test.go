package bench

import (
	"testing"

	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// TestMain shares the slow real servers (Redis Cluster, PostgreSQL) across
// the benchmarks of this binary.
func TestMain(m *testing.M) { testinfra.Main(m) }
