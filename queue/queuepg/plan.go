package queuepg

import (
	"github.com/scalekit-go/scalekit/internal/pgplan"
)

// The statements begin with their tables' size class and are prepared
// again when the jobs or unique table halves or doubles (package
// internal/pgplan): a generic plan made while the jobs table was a page
// or two (a new queue, a drained one) is a sequential scan with a hash
// join, and each completion, enqueue and publish would read the whole
// grown table until autoanalyze.

// planSet is the backend's statements for one size class of its tables.
type planSet struct {
	sql statements
	ev  eventStatements
}

// newPlans returns the statements of the tables of prefix, by size class.
func newPlans(b *Backend, prefix string) *pgplan.Set[planSet] {
	return pgplan.New(b.pool, []string{prefix + "_jobs", prefix + "_unique"}, func(tag string) *planSet {
		return &planSet{sql: sqlFor(prefix, tag), ev: eventSQLFor(prefix, tag)}
	})
}

// sql returns the backend's statements for its tables' size now.
func (b *Backend) sql() *statements { return &b.plans.Get().sql }

// ev returns the events' statements (events.go) for the tables' size now.
func (b *Backend) ev() *eventStatements { return &b.plans.Get().ev }
