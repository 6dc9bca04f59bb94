package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
)

// adminStats GETs /admin/stats and flattens it into "field value" lines,
// cache_hit_ratio first.
func (g *generator) adminStats(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	r := g.send(ctx, g.admin, http.MethodGet, "/admin/stats", nil)
	if r.err != nil || r.status != http.StatusOK {
		return []string{"unavailable: " + answer(r)}
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return []string{"unreadable: " + excerpt(r.body)}
	}
	var lines []string
	var flatten func(prefix string, v any)
	flatten = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if len(v) > 0 {
				for _, k := range sortedKeys(v) {
					flatten(prefix+"."+k, v[k])
				}
				return
			}
		case []any:
			if len(v) > 0 && !slices.ContainsFunc(v, func(e any) bool { _, ok := e.(map[string]any); return !ok }) {
				for i, e := range v {
					flatten(fmt.Sprintf("%s[%d]", prefix, i), e)
				}
				return
			}
		}
		b, _ := json.Marshal(v)
		lines = append(lines, fmt.Sprintf("%s\t%s", strings.TrimPrefix(prefix, "."), b))
	}
	keys := sortedKeys(m)
	if i := slices.Index(keys, "cache_hit_ratio"); i > 0 {
		keys = append(append([]string{"cache_hit_ratio"}, keys[:i]...), keys[i+1:]...)
	}
	for _, k := range keys {
		flatten("."+k, m[k])
	}
	return lines
}

// slo GETs /slo: a table of the objectives that saw traffic when the
// answer has the slo package's shape, else the JSON indented; either cut
// to about 40 lines.
func (g *generator) slo(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	r := g.send(ctx, g.admin, http.MethodGet, "/slo", nil)
	if r.err != nil || r.status != http.StatusOK {
		return []string{"unavailable: " + answer(r)}
	}
	lines, err := sloLines(r.body)
	if err != nil {
		return []string{"unreadable: " + excerpt(r.body)}
	}
	const maxLines = 40
	if len(lines) > maxLines {
		lines = append(lines[:maxLines], fmt.Sprintf("... (%d more lines: GET %s/slo)", len(lines)-maxLines, g.base))
	}
	return lines
}

func sloLines(body []byte) ([]string, error) {
	var doc struct {
		Objectives []struct {
			Name            string   `json:"name"`
			Target          *float64 `json:"target"`
			Good            float64  `json:"good"`
			Total           *float64 `json:"total"`
			BudgetRemaining float64  `json:"budget_remaining"`
			Alerts          []struct {
				Name   string `json:"name"`
				Firing bool   `json:"firing"`
			} `json:"alerts"`
		} `json:"objectives"`
	}
	if json.Unmarshal(body, &doc) == nil && len(doc.Objectives) > 0 {
		var buf bytes.Buffer
		tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "objective\ttarget\tgood/total\tbudget left\tfiring")
		idle, known := 0, true
		for _, o := range doc.Objectives {
			if o.Name == "" || o.Target == nil || o.Total == nil {
				known = false
				break
			}
			if *o.Total == 0 {
				idle++
				continue
			}
			var firing []string
			for _, a := range o.Alerts {
				if a.Firing {
					firing = append(firing, a.Name)
				}
			}
			fmt.Fprintf(tw, "%s\t%g\t%.0f/%.0f\t%.1f%%\t%s\n", o.Name, *o.Target, o.Good, *o.Total, 100*o.BudgetRemaining, cmp.Or(strings.Join(firing, ","), "-"))
		}
		if known {
			tw.Flush()
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if idle > 0 {
				lines = append(lines, fmt.Sprintf("(%d objectives without traffic left out)", idle))
			}
			return lines, nil
		}
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(body), "", "  "); err != nil {
		return nil, err
	}
	return strings.Split(buf.String(), "\n"), nil
}
