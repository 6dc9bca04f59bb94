package scalekitotel_test

import (
	"testing"

	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// TestMain fails a passing run that leaks goroutines.
func TestMain(m *testing.M) { testinfra.Main(m) }
