package added

import (
	"errors"
	"strings"
	"testing"
)

var errDup = errors.New("dup")

type named struct{ kind, name string }

func (n named) AddedAs() (string, string) { return n.kind, n.name }

func TestSet(t *testing.T) {
	var s Set
	p := new(int)
	for _, key := range []any{named{"cache", "users"}, named{"batch", "users"}, p} {
		if err := s.Add(errDup, "Add", key); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Add(errDup, "AddCache", named{"cache", "users"}); !errors.Is(err, errDup) || !strings.Contains(err.Error(), `AddCache: a cache named "users"`) {
		t.Fatalf("a name taken: %v", err)
	}
	if err := s.Add(errDup, "AddX", p); !errors.Is(err, errDup) || !strings.Contains(err.Error(), "this *int") {
		t.Fatalf("a primitive added twice: %v", err)
	}
}

func TestIsNil(t *testing.T) {
	var np *int
	var i any = np
	if !IsNil(nil) || !IsNil(i) || IsNil(new(int)) || IsNil(3) {
		t.Fatal("IsNil")
	}
}
