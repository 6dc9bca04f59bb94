package main

import (
	"net/http"
	"testing"
)

func TestCompareReplay(t *testing.T) {
	body := []byte(`{"id":"pay_1","status":"captured"}` + "\n")
	marked := http.Header{"Idempotent-Replayed": {"true"}}
	for _, tc := range []struct {
		name       string
		origMarked bool
		r          result
		want       replayCheck
	}{
		{"the stored answer", false, result{status: 201, body: body, header: marked}, replayCheck{}},
		{"the replay overtook", true, result{status: 201, body: body, header: http.Header{}}, replayCheck{overtook: true}},
		{"not marked", false, result{status: 201, body: body, header: http.Header{}},
			replayCheck{noHeader: true, problem: "replay without Idempotent-Replayed: true", detail: "neither answer says Idempotent-Replayed: true"}},
		{"ran twice", false, result{status: 201, body: []byte(`{"id":"pay_2"}`), header: http.Header{}},
			replayCheck{bodyDiffers: true, noHeader: true, problem: "replay body differs from the original",
				detail: `body {"id":"pay_2"}, original {"id":"pay_1","status":"captured"}; neither answer says Idempotent-Replayed: true`}},
		{"another status", false, result{status: 200, body: body, header: marked},
			replayCheck{statusDiffers: true, problem: "replay status differs from the original", detail: "status 200, original 201"}},
	} {
		if got := compareReplay(201, body, tc.origMarked, tc.r); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
