package cache

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

type flatUser struct {
	ID    int
	Name  string
	Email string `json:"email,omitempty"`
	Admin bool
}

// storeRecord puts value (JSON, as another writer may have written it)
// in store under key, in an envelope fresh for a minute.
func storeRecord(t *testing.T, store Store, key, value string) {
	t.Helper()
	now := time.Now().UnixNano()
	env := envelope{fresh: now + int64(time.Minute), hard: now + int64(time.Minute), value: []byte(value)}
	if err := store.Set(context.Background(), key, env.encode(), time.Minute); err != nil {
		t.Fatal(err)
	}
}

// A flat V with the default codec reads Store values through the flat
// plan; records it declines (whitespace, other key order, case, escapes,
// unknown keys, null) still decode as json.Unmarshal decodes them, and
// records json.Unmarshal rejects are codec errors, as before.
func TestFlatJSONStoreValues(t *testing.T) {
	store := NewMemoryStore(MemoryStoreOptions{})
	c, err := New[flatUser](Options{Store: store, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.flat == nil {
		t.Fatal("no flat plan for a flat struct with the JSON codec")
	}
	ctx := context.Background()
	fail := func(context.Context, string) (flatUser, error) { return flatUser{}, errors.New("must not load") }
	ada := flatUser{ID: 7, Name: "Ada", Email: "ada@example.com", Admin: true}
	if err := c.Set(ctx, "set", ada); err != nil {
		t.Fatal(err)
	}
	for i, raw := range []string{
		`{"ID":7,"Name":"Ada","email":"ada@example.com","Admin":true}`,          // as Marshal writes it
		`{ "ID": 7, "Name": "Ada", "email": "ada@example.com", "Admin": true }`, // whitespace
		`{"Name":"Ada","ID":7,"email":"ada@example.com","Admin":true}`,          // order: the plan sets Name, then declines
		`{"ID":7,"name":"Ada","EMAIL":"ada@example.com","Admin":true}`,          // case
		`{"ID":7,"Name":"\u0041da","email":"ada@example.com","Admin":true}`,     // escape
		`{"ID":7,"Name":"Ada","Other":[1],"email":"ada@example.com","Admin":true}`,
		`{"ID":7,"Name":"Ada","email":"ada@example.com","Admin":true,"Name":null}`,
	} {
		key := "k" + string(rune('a'+i))
		storeRecord(t, store, key, raw)
		d, err := New[flatUser](Options{Store: store, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		var want flatUser
		if err := json.Unmarshal([]byte(raw), &want); err != nil || want != ada {
			t.Fatalf("json.Unmarshal(%s) = %+v, %v", raw, want, err)
		}
		if got, err := d.Get(ctx, key, fail); err != nil || got != want {
			t.Errorf("Get of %s = %+v, %v; want %+v", raw, got, err, want)
		}
		if got, err := d.Get(ctx, "set", fail); err != nil || got != ada {
			t.Errorf("Get of Set's value = %+v, %v", got, err)
		}
		d.Close()
	}
	storeRecord(t, store, "bad", `{"ID":"seven"}`)
	if v, err := c.Get(ctx, "bad", func(context.Context, string) (flatUser, error) { return ada, nil }); err != nil || v != ada {
		t.Fatalf("Get over an undecodable record = %+v, %v", v, err)
	}
	if st := c.Stats(); st.CodecErrors == 0 { // each read of the record counts
		t.Fatalf("CodecErrors = 0")
	}
}

// countingJSON is JSON that counts its Unmarshal calls.
type countingJSON struct {
	JSON
	n *int
}

func (c countingJSON) Unmarshal(data []byte, v any) error { *c.n++; return c.JSON.Unmarshal(data, v) }

// Another Codec, or a V that is not flat, goes through the Codec.
func TestFlatJSONOnlyForTheDefaultCodec(t *testing.T) {
	store := NewMemoryStore(MemoryStoreOptions{})
	var n int
	c, err := New[flatUser](Options{Store: store, Codec: countingJSON{n: &n}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	storeRecord(t, store, "k", `{"ID":1}`)
	if v, err := c.Get(ctx0, "k", nil); err != nil || v.ID != 1 || n != 1 {
		t.Fatalf("Get = %+v, %v; Codec.Unmarshal calls %d, want 1", v, err, n)
	}
	for _, flat := range []bool{
		mustNew[time.Time](t).flat != nil, mustNew[map[string]int](t).flat != nil, mustNew[*flatUser](t).flat != nil,
	} {
		if flat {
			t.Error("a flat plan for a type that is not flat")
		}
	}
	if mustNew[string](t).flat == nil || mustNew[float64](t).flat == nil {
		t.Error("no flat plan for a basic type")
	}
}

var ctx0 = context.Background()

func mustNew[V any](t *testing.T) *Cache[V] {
	t.Helper()
	c, err := New[V](Options{Store: NewMemoryStore(MemoryStoreOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
