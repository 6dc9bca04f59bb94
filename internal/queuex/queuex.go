// Package queuex holds what package queue shares with its siblings
// (queueredis, metrics) without making it API: the rule for queue names
// and job kinds.
package queuex

import "fmt"

// ValidName reports whether s is a valid queue name, job kind or job id:
// 1 to 100 ASCII letters, digits and _ . : -. (A loop: it runs on every
// enqueue, where a regular expression cost a tenth of the client's
// time.)
func ValidName(s string) bool {
	if len(s) < 1 || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// CheckName returns nil for a valid name (ValidName), else an error
// wrapping invalid (the caller's ErrInvalid) that names what was checked.
func CheckName(invalid error, what, name string) error {
	if !ValidName(name) {
		return fmt.Errorf("%w: %s %q must be 1 to 100 letters, digits, '_', '.', ':' or '-'", invalid, what, name)
	}
	return nil
}
