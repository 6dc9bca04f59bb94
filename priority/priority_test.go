package priority_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/scalekit-go/scalekit/priority"
)

func TestClass(t *testing.T) {
	ctx := context.Background()
	if got := priority.From(ctx); got != priority.Default {
		t.Fatalf("From(empty ctx) = %v, want default", got)
	}
	for i, c := range priority.Classes {
		if got := priority.From(priority.With(ctx, c)); got != c {
			t.Errorf("From(With(%v)) = %v", c, got)
		}
		if p, ok := priority.Parse(c.String()); !ok || p != c {
			t.Errorf("Parse(%q) = %v, %v", c, p, ok)
		}
		if c.Index() != i {
			t.Errorf("%v.Index() = %d, want %d", c, c.Index(), i)
		}
	}
	if _, ok := priority.Parse("urgent"); ok {
		t.Error("Parse(urgent) succeeded")
	}
	if priority.Class(9).Index() != 1 || priority.Class(9).String() != "Class(9)" {
		t.Error("an unknown class is not counted as default")
	}
	n := priority.Counts{Sheddable: 1, Default: 2, Critical: 3}
	if n.Of(priority.Sheddable) != 1 || n.Of(priority.Default) != 2 || n.Of(priority.Critical) != 3 {
		t.Errorf("Counts.Of: %+v", n)
	}
}

func ExampleWith() {
	ctx := priority.With(context.Background(), priority.Sheddable)
	fmt.Println(priority.From(ctx), priority.From(context.Background()))
	// Output: sheddable default
}
