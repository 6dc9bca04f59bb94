package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/queuex"
)

// MetadataEventKey is the metadata key under which a published event's
// ordering key (PublishOptions.Key) travels to every subscriber's job
// (Job.Metadata, Message.Metadata).
const MetadataEventKey = "scalekit-event-key"

// PublishOptions are per-event options; the zero value gives the event a
// new id and each subscriber's job Default priority and the default
// attempts. There is no unique key: the event's id is its dedupe key (a
// Publish retried with the same ID delivers nothing twice), and no delay:
// an event is delivered at once (a subscriber that must wait snoozes,
// see Snooze).
type PublishOptions struct {
	// ID is the event's id, which is every subscriber job's id. Default:
	// a new time-ordered id. Set it to make Publish safe to retry:
	// publishing again with the same ID and event stores nothing in the
	// queues that hold it already and delivers it to those that missed
	// it. 1 to 100 letters, digits, '_', '.', ':' or '-'.
	ID string
	// Key is the event's ordering key (an aggregate id, say), carried to
	// every subscriber's job as the metadata MetadataEventKey, for
	// handlers and relays that order or partition by it; the queue itself
	// neither orders nor deduplicates by it. At most MaxMetadataValue
	// bytes of valid UTF-8. Default: none.
	Key string
	// Metadata travels with every subscriber's job, as
	// EnqueueOptions.Metadata does; it must not hold MetadataEventKey
	// (set Key), and with Key it may have at most MaxMetadata-1 pairs.
	// The map is copied. Default: none.
	Metadata map[string]string
	// Priority of every subscriber's job. Default: Default.
	Priority Priority
	// MaxAttempts is how many attempts each subscriber's job gets before
	// it dies (each subscriber retries and dead-letters on its own).
	// Default: 10.
	MaxAttempts int
}

// Published is the outcome of a Publish: the event's id and the
// subscriber queues that hold it.
type Published struct {
	// ID is the event's id (PublishOptions.ID or the new one), also when
	// the backend or a middleware failed (it is empty only for invalid
	// arguments): publish again with it (PublishOptions.ID) to finish a
	// delivery that failed part way without delivering twice.
	ID string
	// Queues are the queues subscribed to the topic that hold the event
	// (stored by this call, or already there from an earlier call with
	// the same ID), sorted; empty when the topic has no subscriber.
	Queues []string
}

// NewEvent builds the stored form of an event published on topic: the
// message Client.Publish passes (through the client middleware) to
// Backend.Publish, and what a backend's own publish inside the caller's
// transaction (queuepg.Backend.PublishTx) builds, with now read from its
// clock. Its Queue is empty (the backend stores a copy in each subscriber
// queue), its Kind is topic, its Payload the event as JSON, its Metadata
// o.Metadata plus o.Key under MetadataEventKey. Every error wraps
// ErrInvalid and names the argument or field.
func NewEvent(now time.Time, topic string, event any, o PublishOptions) (*Message, error) {
	if err := checkName("topic", topic); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(event)
	if err != nil {
		return nil, fmt.Errorf("%w: the event cannot be encoded as JSON: %v", ErrInvalid, err)
	}
	switch {
	case o.ID != "" && !queuex.ValidName(o.ID):
		return nil, fmt.Errorf("%w: PublishOptions.ID %q must be 1 to 100 letters, digits, '_', '.', ':' or '-'", ErrInvalid, o.ID)
	case o.Priority < Default || o.Priority > Low:
		return nil, fmt.Errorf("%w: PublishOptions.Priority must be High, Default or Low, got %d", ErrInvalid, o.Priority)
	case o.MaxAttempts < 0:
		return nil, fmt.Errorf("%w: PublishOptions.MaxAttempts must be >= 1 (0: the default 10), got %d", ErrInvalid, o.MaxAttempts)
	case len(o.Key) > MaxMetadataValue:
		return nil, fmt.Errorf("%w: PublishOptions.Key must be at most %d bytes, got %d", ErrInvalid, MaxMetadataValue, len(o.Key))
	case !utf8.ValidString(o.Key):
		return nil, fmt.Errorf("%w: PublishOptions.Key is not valid UTF-8", ErrInvalid)
	}
	if _, ok := o.Metadata[MetadataEventKey]; ok {
		return nil, fmt.Errorf("%w: PublishOptions.Metadata must not hold %q: set PublishOptions.Key", ErrInvalid, MetadataEventKey)
	}
	if err := checkMetadata("PublishOptions.Metadata", o.Metadata); err != nil {
		return nil, err
	}
	m := &Message{ID: o.ID, Kind: topic, Payload: payload, Priority: o.Priority, State: Pending,
		MaxAttempts: o.MaxAttempts, RunAt: now, EnqueuedAt: now}
	if len(o.Metadata) > 0 || o.Key != "" {
		m.Metadata = maps.Clone(o.Metadata)
		if m.Metadata == nil {
			m.Metadata = map[string]string{}
		}
		if o.Key != "" {
			m.Metadata[MetadataEventKey] = o.Key
		}
		if len(m.Metadata) > MaxMetadata {
			return nil, fmt.Errorf("%w: PublishOptions.Metadata has %d entries, at most %d are allowed with a Key", ErrInvalid, len(o.Metadata), MaxMetadata-1)
		}
	}
	if m.ID == "" {
		m.ID = newID()
	}
	if m.MaxAttempts == 0 {
		m.MaxAttempts = 10
	}
	return m, nil
}

// EventCopy is the job a backend stores in queue for the event m (a
// NewEvent message): a copy of m with its own Queue and metadata map.
func EventCopy(m *Message, queue string) *Message {
	c := *m
	c.Queue = queue
	c.Metadata = maps.Clone(m.Metadata)
	return &c
}

// PublishError reports the subscriber queues where an event's id is
// already used by another job (another kind or payload: the same id
// reused for another event): they did not get the event; the other
// subscribers did. It Is ErrInvalid.
type PublishError struct {
	Topic, ID string
	// Queues are the queues where the id is used by another job, sorted.
	Queues []string
}

// Error names the queues.
func (e *PublishError) Error() string {
	return fmt.Sprintf("queue: invalid: event %s on topic %s: the id is already used by another job in queue(s) %s",
		e.ID, e.Topic, strings.Join(e.Queues, ", "))
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *PublishError) Is(target error) bool { return target == ErrInvalid }

// Publish delivers event (encoded as JSON) to every queue subscribed to
// topic (Subscribe), durably: each subscriber queue gets its own job of
// Kind topic whose ID is the event's id (the same in every queue),
// whose Payload is the event and whose Metadata is o.Metadata plus o.Key
// under MetadataEventKey, so a subscriber's Worker handles it with
// Handle(w, topic, fn), with its own attempts, retries and dead letters.
// With no subscriber it stores nothing and succeeds (Published.Queues
// empty).
//
// The backends store the copies atomically where they can: under one
// lock (MemoryBackend), in one statement (queuepg, and inside the
// caller's transaction with its PublishTx: a transactional outbox with
// no relay process), in one script (queueredis on one Redis). On a
// Redis Cluster the subscriber queues live in different slots, so each
// gets its own script: an error may leave the event in some queues and
// not others. Publishing again with the same PublishOptions.ID (the
// Published.ID returned with the error) completes the delivery without
// duplicates on every backend: a queue that holds the event already
// stores nothing (SameJob). A queue where the id is another job's (an
// id reused for another event) does not get the event: Publish returns a
// *PublishError (errors.Is ErrInvalid) naming it, with the queues that
// did get it in Published.Queues.
//
// The event passes once through ClientOptions.Middleware on its way to
// the backend, as the *Message NewEvent built: Queue empty (it goes to
// every subscriber), Kind the topic. A middleware adds metadata (a trace
// context) that every subscriber's job carries, or refuses the publish;
// it must not change Kind or ID (ErrInvalid).
func (c *Client) Publish(ctx context.Context, topic string, event any, o PublishOptions) (Published, error) {
	m, err := NewEvent(clock.Now(c.clk), topic, event, o)
	if err != nil {
		return Published{}, err
	}
	id := m.ID
	var queues []string
	var f EnqueueFunc = func(ctx context.Context, m *Message) error {
		if m.Kind != topic || m.ID != id {
			return fmt.Errorf("%w: queue: Publish: a client middleware changed the event's kind or id (%q, %q; want %q, %q)", ErrInvalid, m.Kind, m.ID, topic, id)
		}
		if err := c.check(m); err != nil {
			return err
		}
		var err error
		queues, err = c.b.Publish(ctx, topic, m)
		return err
	}
	for k := len(c.mw) - 1; k >= 0; k-- {
		f = c.mw[k](f)
	}
	err = f(ctx, m)
	return Published{ID: id, Queues: queues}, err
}

// Subscribe makes queue a subscriber of topic: every event published on
// topic from now on is delivered to queue, as a job of Kind topic. The
// subscription is stored in the backend, so it holds for the whole fleet
// and across restarts until Unsubscribe; subscribing again does nothing.
// Register the handler (Handle(w, topic, fn)) on the Workers of queue
// before events arrive, or they fail as jobs of an unknown kind.
func (c *Client) Subscribe(ctx context.Context, topic, queue string) error {
	if err := checkSubscription(topic, queue); err != nil {
		return err
	}
	return c.b.Subscribe(ctx, topic, queue)
}

// Unsubscribe stops delivering topic's events to queue; the jobs already
// delivered stay. Unsubscribing a queue that is not subscribed does
// nothing.
func (c *Client) Unsubscribe(ctx context.Context, topic, queue string) error {
	if err := checkSubscription(topic, queue); err != nil {
		return err
	}
	return c.b.Unsubscribe(ctx, topic, queue)
}

// Subscribers lists the queues subscribed to topic, sorted.
func (c *Client) Subscribers(ctx context.Context, topic string) ([]string, error) {
	if err := checkName("topic", topic); err != nil {
		return nil, err
	}
	return c.b.Subscribers(ctx, topic)
}

// checkSubscription validates a topic and a queue name.
func checkSubscription(topic, queue string) error {
	if err := checkName("topic", topic); err != nil {
		return err
	}
	return checkName("queue", queue)
}

// Subscribe is Backend.Subscribe.
func (b *MemoryBackend) Subscribe(_ context.Context, topic, queue string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs == nil {
		b.subs = map[string]map[string]bool{}
	}
	if b.subs[topic] == nil {
		b.subs[topic] = map[string]bool{}
	}
	b.subs[topic][queue] = true
	return nil
}

// Unsubscribe is Backend.Unsubscribe.
func (b *MemoryBackend) Unsubscribe(_ context.Context, topic, queue string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs[topic], queue)
	if len(b.subs[topic]) == 0 {
		delete(b.subs, topic)
	}
	return nil
}

// Subscribers is Backend.Subscribers.
func (b *MemoryBackend) Subscribers(_ context.Context, topic string) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.subs[topic])), nil
}

// Publish is Backend.Publish: every copy is stored under one lock.
func (b *MemoryBackend) Publish(_ context.Context, topic string, m *Message) ([]string, error) {
	now := clock.Now(b.o.Clock)
	b.mu.Lock()
	defer b.mu.Unlock()
	var stored, used []string
	for _, q := range slices.Sorted(maps.Keys(b.subs[topic])) {
		if err := b.enqueue(EventCopy(m, q), now); err != nil {
			used = append(used, q) // the id is another job's (no unique key: no duplicate)
			continue
		}
		stored = append(stored, q)
	}
	if len(used) > 0 {
		return stored, &PublishError{Topic: topic, ID: m.ID, Queues: used}
	}
	return stored, nil
}
