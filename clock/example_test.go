package clock_test

import (
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/clock"
)

func ExampleManual() {
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	deadline := clk.Now().Add(time.Minute)
	clk.Add(90 * time.Second)
	fmt.Println("expired:", clk.Now().After(deadline))
	// Output: expired: true
}
