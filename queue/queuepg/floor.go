package queuepg

import (
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/scalekit-go/scalekit/queue"
)

// fetchFloorRounds is how often (in rounds of a queue's lane) a fetch
// starts each priority's range from the bottom instead of its floor: a job
// that came due below a floor while the range above it keeps filling the
// fetch waits at most this many rounds.
const fetchFloorRounds = 16

// fetchFloor is where one queue's fetches start each priority's range
// (fetchSQL): the (run_at, id) of a job the backend's last fetch there
// took. Every live job below a job a fetch took was taken by it, locked
// by another transaction (taken, or given back if that one rolls back),
// or came due there later: so the floor skips the index entries the taken
// jobs left (dead until vacuum), and fetchSQL reads below it when the
// range above falls short, and every fetchFloorRounds rounds.
type fetchFloor struct {
	mu     sync.Mutex
	rounds int
	at     map[queue.Priority]floorKey
}

// floorKey is a position in a priority's range of the due index.
type floorKey struct {
	runAt time.Time
	id    string
}

// floor returns queue q's floors.
func (b *Backend) floor(q string) *fetchFloor {
	if f, ok := b.floors.Load(q); ok {
		return f.(*fetchFloor)
	}
	f, _ := b.floors.LoadOrStore(q, &fetchFloor{at: map[queue.Priority]floorKey{}})
	return f.(*fetchFloor)
}

// lowerFloor makes queue q's next fetch start from the bottom: a job of
// this backend came due below the floors (Release keeps its run_at so that
// it goes first; a retry's run_at is the client's clock).
func (b *Backend) lowerFloor(q string) {
	f := b.floor(q)
	f.mu.Lock()
	clear(f.at)
	f.mu.Unlock()
}

// args are fetchSQL's floor parameters ($8 to $13) for the priorities in
// order, counting a round: at -infinity every fetchFloorRounds rounds, for
// a priority without a floor, and for all with a nil f (a strict fetch).
func (f *fetchFloor) args(order [3]queue.Priority) []any {
	if f == nil {
		bottom := pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}
		return []any{bottom, "", bottom, "", bottom, ""}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rounds%fetchFloorRounds == 0 {
		clear(f.at)
	}
	f.rounds++
	out := make([]any, 0, 6)
	for _, p := range order {
		k, ok := f.at[p]
		if !ok {
			out = append(out, pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}, "")
			continue
		}
		out = append(out, k.runAt, k.id)
	}
	return out
}

// advance moves the floors to the last job of each priority the fetch
// took from its ranges (ranks 1 to 3; 0 is an expired lease, which says
// nothing about the due index). Any job taken is a safe floor (see
// fetchFloor), so the order of ids here need not be the database's.
func (f *fetchFloor) advance(leases []*queue.Lease, ranks []int) {
	if f == nil {
		return // a strict fetch leaves the floors as they are
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, l := range leases {
		if ranks[i] == 0 {
			continue
		}
		m := l.Msg
		k, ok := f.at[m.Priority]
		if !ok || m.RunAt.After(k.runAt) || m.RunAt.Equal(k.runAt) && strings.Compare(m.ID, k.id) > 0 {
			f.at[m.Priority] = floorKey{runAt: m.RunAt, id: m.ID}
		}
	}
}
