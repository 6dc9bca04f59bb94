// Package queuex holds what package queue shares with its siblings
// (queueredis, metrics) without making it API: the rule for queue names
// and job kinds.
package queuex

import (
	"fmt"
	"regexp"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,100}$`)

// ValidName reports whether s is a valid queue name, job kind or job id:
// 1 to 100 letters, digits and _ . : -.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// CheckName returns nil for a valid name (ValidName), else an error
// wrapping invalid (the caller's ErrInvalid) that names what was checked.
func CheckName(invalid error, what, name string) error {
	if !ValidName(name) {
		return fmt.Errorf("%w: %s %q must be 1 to 100 letters, digits, '_', '.', ':' or '-'", invalid, what, name)
	}
	return nil
}
