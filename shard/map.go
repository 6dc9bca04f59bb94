package shard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/scalekit-go/scalekit/dbrouter"
)

// Map assigns every virtual shard to a cluster. Maps are values: For reads
// the one installed by New or the last SetMap, and a new Map replaces it
// whole, with a higher Version.
//
// Its JSON form lists ranges of virtual shards (both ends included):
//
//	{"version": 2, "virtual_shards": 1024, "ranges": [
//	  {"first": 0, "last": 511, "cluster": "a"},
//	  {"first": 512, "last": 1023, "cluster": "b"}]}
//
// ParseMap also accepts {"version": 2, "assign": ["a", "a", ..., "b"]}, one
// name per virtual shard. Either form may carry "floors", the Floors by
// virtual shard in dbrouter.Token's string form:
//
//	"floors": {"17": "0/3000148@1767225600123@1"}
type Map struct {
	// Version orders maps: SetMap refuses a map whose Version is not
	// greater than the installed one's. At least 1.
	Version int64
	// Assign names the cluster of each virtual shard: Assign[v] is the
	// cluster of virtual shard v. Its length is the number of virtual
	// shards; every entry names a cluster of Options.Clusters.
	Assign []string
	// Floors are read floors of moved virtual shards: a read of virtual
	// shard v carries Floors[v] (Route.Floor, applied by Route.Context),
	// so it goes only to replicas of v's cluster that have replayed it,
	// else to the primary. A Mover sets the floor of the virtual shard it
	// moves to the target's WAL position after the catch-up, so reads
	// right after the flip never miss a copied row on a lagging replica;
	// once every replica has passed it a floor holds nothing back. A
	// floor is a position on the cluster the map puts the virtual shard
	// on: a map that moves a virtual shard by hand drops its floor.
	// Optional.
	Floors map[int]dbrouter.Token
}

// EvenMap returns a Map of version that splits vshards virtual shards into
// contiguous ranges of (nearly) equal size, one per cluster, in the order
// given: the usual first map. It returns a Map with an empty Assign when
// vshards < 1 or no cluster is given, which New refuses.
func EvenMap(version int64, vshards int, clusters ...string) Map {
	m := Map{Version: version}
	if vshards < 1 || len(clusters) == 0 {
		return m
	}
	m.Assign = make([]string, vshards)
	for v := range m.Assign {
		m.Assign[v] = clusters[v*len(clusters)/vshards]
	}
	return m
}

// Clone returns a copy of m that shares nothing with it.
func (m Map) Clone() Map {
	m.Assign = append([]string(nil), m.Assign...)
	if m.Floors != nil {
		f := make(map[int]dbrouter.Token, len(m.Floors))
		for v, tok := range m.Floors {
			f[v] = tok
		}
		m.Floors = f
	}
	return m
}

// Counts returns how many virtual shards each cluster holds.
func (m Map) Counts() map[string]int {
	c := make(map[string]int)
	for _, name := range m.Assign {
		c[name]++
	}
	return c
}

// Range is a run of virtual shards First..Last (both included) on Cluster,
// the unit of Map's JSON form.
type Range struct {
	First   int    `json:"first"`
	Last    int    `json:"last"`
	Cluster string `json:"cluster"`
}

// Ranges returns m.Assign as runs of consecutive virtual shards on the
// same cluster, in order.
func (m Map) Ranges() []Range {
	var rs []Range
	for v, name := range m.Assign {
		if n := len(rs); n > 0 && rs[n-1].Cluster == name && rs[n-1].Last == v-1 {
			rs[n-1].Last = v
			continue
		}
		rs = append(rs, Range{First: v, Last: v, Cluster: name})
	}
	return rs
}

type mapJSON struct {
	Version       int64             `json:"version"`
	VirtualShards int               `json:"virtual_shards,omitempty"`
	Ranges        []Range           `json:"ranges,omitempty"`
	Assign        []string          `json:"assign,omitempty"`
	Floors        map[string]string `json:"floors,omitempty"`
}

// MarshalJSON writes m in the ranges form; zero Floors are left out.
func (m Map) MarshalJSON() ([]byte, error) {
	j := mapJSON{Version: m.Version, VirtualShards: len(m.Assign), Ranges: m.Ranges()}
	for v, tok := range m.Floors {
		if tok.IsZero() {
			continue
		}
		if j.Floors == nil {
			j.Floors = make(map[string]string, len(m.Floors))
		}
		j.Floors[strconv.Itoa(v)] = tok.String()
	}
	return json.Marshal(j)
}

// checkFloors reports a floor of a virtual shard outside [0, n); field
// names the map in the error.
func checkFloors(floors map[int]dbrouter.Token, n int, field string) error {
	for v := range floors {
		if v < 0 || v >= n {
			return fmt.Errorf("%s.Floors[%d]: no such virtual shard, want 0..%d", field, v, n-1)
		}
	}
	return nil
}

// parseFloors decodes the JSON form's floors of a map of n virtual shards.
func parseFloors(in map[string]string, n int) (map[int]dbrouter.Token, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[int]dbrouter.Token, len(in))
	for k, s := range in {
		v, err := strconv.Atoi(k)
		if err != nil || v < 0 || v >= n {
			return nil, fmt.Errorf("shard: map JSON: floors key %q is not a virtual shard, want 0..%d", k, n-1)
		}
		tok, err := dbrouter.ParseToken(s)
		if err != nil {
			return nil, fmt.Errorf("shard: map JSON: floors[%q]: %w", k, err)
		}
		if tok.IsZero() {
			return nil, fmt.Errorf("shard: map JSON: floors[%q] is empty, want a token (\"LSN@unix-milliseconds[@timeline]\")", k)
		}
		out[v] = tok
	}
	return out, nil
}

// UnmarshalJSON reads either JSON form (see Map); ranges must lie within
// virtual_shards and not overlap. Whether every virtual shard is assigned
// is checked by New and SetMap.
func (m *Map) UnmarshalJSON(data []byte) error {
	var j mapJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("shard: map JSON: %w", err)
	}
	switch {
	case j.Assign != nil && j.Ranges != nil:
		return errors.New("shard: map JSON: give either assign or ranges, not both")
	case j.Assign != nil:
		if j.VirtualShards != 0 && j.VirtualShards != len(j.Assign) {
			return fmt.Errorf("shard: map JSON: virtual_shards is %d but assign has %d entries", j.VirtualShards, len(j.Assign))
		}
		floors, err := parseFloors(j.Floors, len(j.Assign))
		if err != nil {
			return err
		}
		*m = Map{Version: j.Version, Assign: j.Assign, Floors: floors}
		return nil
	}
	if j.VirtualShards < 1 || j.VirtualShards > MaxVirtualShards {
		return fmt.Errorf("shard: map JSON: virtual_shards is %d, want 1..%d with ranges", j.VirtualShards, MaxVirtualShards)
	}
	assign := make([]string, j.VirtualShards)
	for i, r := range j.Ranges {
		if r.First < 0 || r.Last < r.First || r.Last >= j.VirtualShards {
			return fmt.Errorf("shard: map JSON: ranges[%d] is %d..%d, want 0 <= first <= last < virtual_shards (%d)", i, r.First, r.Last, j.VirtualShards)
		}
		if r.Cluster == "" {
			return fmt.Errorf("shard: map JSON: ranges[%d] has no cluster", i)
		}
		for v := r.First; v <= r.Last; v++ {
			if assign[v] != "" {
				return fmt.Errorf("shard: map JSON: ranges[%d] assigns virtual shard %d again (already on %q)", i, v, assign[v])
			}
			assign[v] = r.Cluster
		}
	}
	floors, err := parseFloors(j.Floors, j.VirtualShards)
	if err != nil {
		return err
	}
	*m = Map{Version: j.Version, Assign: assign, Floors: floors}
	return nil
}

// ParseMap reads a Map from its JSON form (see Map).
func ParseMap(data []byte) (Map, error) {
	var m Map
	err := m.UnmarshalJSON(data)
	return m, err
}

// LoadMap reads a Map from a JSON file: the static map of a small setup or
// a test.
func LoadMap(path string) (Map, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Map{}, fmt.Errorf("shard: %w", err)
	}
	m, err := ParseMap(data)
	if err != nil {
		return Map{}, fmt.Errorf("%w (file %s)", err, path)
	}
	return m, nil
}
