package queueredis

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/queuex"
	"github.com/scalekit-go/scalekit/queue"
)

// topicKey is the set of the queues subscribed to topic:
// {prefix:topic:<topic>}:subscribers, a hash tag of its own per topic (no
// queue key ends in ":subscribers").
func (b *Backend) topicKey(topic string) string {
	return "{" + b.prefix + ":topic:" + topic + "}:subscribers"
}

// Subscribe is queue.Backend.Subscribe: SADD to the topic's set. The
// queue joins the set of queue names (Queues) too: a publish's script
// cannot add it there.
func (b *Backend) Subscribe(ctx context.Context, topic, queueName string) error {
	if err := checkSubscription(topic, queueName); err != nil {
		return err
	}
	if err := b.register(ctx, queueName); err != nil {
		return err
	}
	return b.cmd(ctx, "Subscribe", func(ctx context.Context) error { return b.c.SAdd(ctx, b.topicKey(topic), queueName).Err() })
}

// Unsubscribe is queue.Backend.Unsubscribe: SREM from the topic's set.
func (b *Backend) Unsubscribe(ctx context.Context, topic, queueName string) error {
	if err := checkSubscription(topic, queueName); err != nil {
		return err
	}
	return b.cmd(ctx, "Unsubscribe", func(ctx context.Context) error { return b.c.SRem(ctx, b.topicKey(topic), queueName).Err() })
}

// Subscribers is queue.Backend.Subscribers.
func (b *Backend) Subscribers(ctx context.Context, topic string) ([]string, error) {
	if err := queuex.CheckName(queue.ErrInvalid, "topic", topic); err != nil {
		return nil, err
	}
	var qs []string
	err := b.cmd(ctx, "Subscribers", func(ctx context.Context) (err error) {
		qs, err = b.c.SMembers(ctx, b.topicKey(topic)).Result()
		return err
	})
	slices.Sort(qs)
	return qs, err
}

func checkSubscription(topic, queueName string) error {
	if err := queuex.CheckName(queue.ErrInvalid, "topic", topic); err != nil {
		return err
	}
	return queuex.CheckName(queue.ErrInvalid, "queue", queueName)
}

// Publish is queue.Backend.Publish. On one Redis (a *redis.Client,
// Sentinel's included) one script reads the topic's subscriber set and
// stores every copy, atomically. On a Redis Cluster (any other client:
// the subscriber queues live in different slots, on different nodes) it
// reads the set, then runs one enqueue script per queue, in queue order,
// and stops at the first error: delivery is per queue there, and
// publishing the same message again completes it, storing nothing twice
// (a queue that holds the event answers 'again').
func (b *Backend) Publish(ctx context.Context, topic string, m *queue.Message) ([]string, error) {
	if err := queuex.CheckName(queue.ErrInvalid, "topic", topic); err != nil {
		return nil, err
	}
	if err := checkMessage(queue.EventCopy(m, topic)); err != nil { // its id and priority (a topic is a valid queue name)
		return nil, err
	}
	var queues, used []string
	add := func(q, status string) bool {
		switch status {
		case "ok":
			queues = append(queues, q)
		case "exists":
			used = append(used, q)
		default:
			return false
		}
		return true
	}
	if _, single := b.c.(*redis.Client); single {
		v, err := b.run(ctx, "Publish", publishScript, []string{b.topicKey(topic)},
			append([]any{"{" + b.prefix + ":", b.now()}, jobArgs(m)...)...)
		if err != nil {
			return nil, err
		}
		r, _ := v.([]any)
		for i := 0; i+1 < len(r); i += 2 {
			q, _ := at[string](r, i)
			status, _ := at[string](r, i+1)
			if !add(q, status) {
				return nil, fmt.Errorf("queueredis: Publish: unexpected reply %v", v)
			}
		}
	} else {
		subs, err := b.Subscribers(ctx, topic)
		if err != nil {
			return nil, err
		}
		for _, q := range subs {
			c := *m
			c.Queue = q
			n := &b.enqueueLane(q).names
			v, err := b.run(ctx, "Publish", enqueueScript, enqueueKeys(n, &c), b.enqueueArgs(n, &c)...)
			if err != nil {
				return queues, err
			}
			r, _ := v.([]any)
			status, _ := at[string](r, 0)
			if !add(q, status) {
				return queues, fmt.Errorf("queueredis: Publish: unexpected reply %v", v)
			}
		}
	}
	slices.Sort(queues)
	if len(used) > 0 {
		slices.Sort(used)
		return queues, &queue.PublishError{Topic: topic, ID: m.ID, Queues: used}
	}
	return queues, nil
}

// publishScript stores one event in every queue of the topic's
// subscriber set (KEYS[1]), each as enqueueScript would (enqueueLua,
// with K pointed at that queue's keys, which the script builds from
// ARGV[1], like Backend.keys), and wakes the fetches of each queue that
// got it; on one Redis only (the queues' keys are in other slots than
// KEYS[1]). ARGV[1]: "{prefix:", ARGV[2]: now, ARGV[3..16]: the job's
// fields, as enqueueScript's (no unique key). Reply: two elements per
// subscriber queue: the queue and enqueue's status ('ok' or 'exists').
var publishScript = script(false, enqueueLua+`
local now = now_us(ARGV[2])
local queues = redis.call('SMEMBERS', KEYS[1])
table.sort(queues)
local out = {}
for _, q in ipairs(queues) do
  local t = ARGV[1] .. q .. '}:'
  K = {t .. 'ready:default', t .. 'ready:high', t .. 'ready:low', t .. 'scheduled', t .. 'retry', t .. 'active',
    t .. 'done', t .. 'dead', t .. 'wake', t .. 'deadseq', t .. 'job:' .. ARGV[3], t .. 'unique:', t .. 'deadat', t .. 'cancelled',
    t .. 'ids', t .. 'ids:built'}
  local r = enqueue(K[11], K[12], ready(ARGV[6]), K[4], K[7], K[15], ARGV, 2, now)
  if r[1] == 'ok' and r[2] ~= 'again' then wake(K[9]) end
  out[#out + 1] = q
  out[#out + 1] = r[1]
end
return out
`)
