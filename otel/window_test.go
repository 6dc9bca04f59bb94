package scalekitotel

import (
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// windowLabel writes a duration as Prometheus's model.Duration does (the
// burn rate's window label), for windows the alert rules may have.
func TestWindowLabel(t *testing.T) {
	for _, d := range []time.Duration{0, time.Millisecond, 1500 * time.Millisecond, time.Second, 5 * time.Minute, 90 * time.Minute,
		time.Hour, 6 * time.Hour, 25 * time.Hour, 72 * time.Hour, 7 * 24 * time.Hour, 90 * 24 * time.Hour, 365 * 24 * time.Hour,
		30 * 24 * time.Hour, -2 * time.Hour} {
		if got, want := windowLabel(d), model.Duration(d).String(); got != want {
			t.Errorf("windowLabel(%v) = %q, want %q", d, got, want)
		}
	}
}
