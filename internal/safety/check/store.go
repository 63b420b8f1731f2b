package check

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Store checks the fenced store's log against the lock history:
//
//   - an accepted write whose At is after the end of the grant it names by
//     Token (see grants) is a stale write the fence should have stopped
//     ("stale-write"); one that names no grant at all is worse
//     ("write-without-grant");
//   - per resource, in the order the store decided, accepted fences never
//     go down ("fence-order"), and a write is rejected only when its fence
//     is below the highest accepted so far ("rejected-current").
//
// Writes that tie on At are taken in slice order, which is the store's log
// order.
func Store(writes []Write, ops []Op) []Violation {
	_, byKey := grants(ops)
	var out []Violation
	order := make([]int, len(writes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(writes[a].At, writes[b].At) })

	type highest struct {
		at    int // index of the write that set it
		fence int64
	}
	top := make(map[string]highest)
	for _, i := range order {
		w := writes[i]
		h, seen := top[w.Lock]
		if !w.Accepted {
			if seen && w.Fence >= h.fence {
				out = append(out, Violation{Checker: CheckerStore, Kind: "rejected-current", Lock: w.Lock,
					Detail: fmt.Sprintf("%s was rejected though the highest accepted fence was %d (%s)",
						describeWrite(i, w), h.fence, describeWrite(h.at, writes[h.at]))})
			}
			continue
		}
		if seen && w.Fence < h.fence {
			out = append(out, Violation{Checker: CheckerStore, Kind: "fence-order", Lock: w.Lock,
				Detail: fmt.Sprintf("%s was accepted after %s", describeWrite(i, w), describeWrite(h.at, writes[h.at]))})
		}
		if !seen || w.Fence > h.fence {
			top[w.Lock] = highest{at: i, fence: w.Fence}
		}

		g := byKey[grantKey{w.Lock, w.Token}]
		switch {
		case g == nil:
			out = append(out, Violation{Checker: CheckerStore, Kind: "write-without-grant", Lock: w.Lock,
				Detail: fmt.Sprintf("%s names a token no OK acquire of this lock returned", describeWrite(i, w))})
		case w.At > g.end:
			out = append(out, Violation{Checker: CheckerStore, Kind: "stale-write", Lock: w.Lock,
				Detail: fmt.Sprintf("%s came %v after its grant ended: %s", describeWrite(i, w), w.At-g.end, g)})
		}
	}
	return out
}

// Counter checks one read-modify-write counter: writes are its store log
// (the caller filters by resource; writes of other kinds are ignored) and
// final is the counter's value at the end of the run. With n accepted
// increments, final must be n ("lost-increment"), and the accepted values
// must be exactly 1..n: a value written twice ("duplicate-increment") is
// two clients that read the same count, a missing one ("missing-increment")
// an increment that was overwritten.
func Counter(writes []Write, final int64) []Violation {
	var out []Violation
	var lock string
	byValue := make(map[int64][]int)
	var n int64
	for i, w := range writes {
		if w.Kind != KindIncrement || !w.Accepted {
			continue
		}
		lock = w.Lock
		byValue[w.Value] = append(byValue[w.Value], i)
		n++
	}
	if final != n {
		out = append(out, Violation{Checker: CheckerCounter, Kind: "lost-increment", Lock: lock,
			Detail: fmt.Sprintf("final value %d, but %d increments were accepted", final, n)})
	}
	for _, v := range slices.Sorted(maps.Keys(byValue)) {
		idx := byValue[v]
		if v < 1 || v > n {
			out = append(out, Violation{Checker: CheckerCounter, Kind: "increment-out-of-range", Lock: lock,
				Detail: fmt.Sprintf("value %d accepted, outside 1..%d: %s", v, n, describeWrite(idx[0], writes[idx[0]]))})
		}
		if len(idx) < 2 {
			continue
		}
		var names []string
		for _, i := range idx {
			names = append(names, describeWrite(i, writes[i]))
		}
		out = append(out, Violation{Checker: CheckerCounter, Kind: "duplicate-increment", Lock: lock,
			Detail: fmt.Sprintf("value %d accepted %d times: %s", v, len(idx), strings.Join(names, ", "))})
	}
	var missing []string
	for v := int64(1); v <= n; v++ {
		if _, ok := byValue[v]; !ok {
			missing = append(missing, fmt.Sprint(v))
		}
	}
	if len(missing) > 0 {
		if len(missing) > 10 {
			missing = append(missing[:10], "…")
		}
		out = append(out, Violation{Checker: CheckerCounter, Kind: "missing-increment", Lock: lock,
			Detail: fmt.Sprintf("values never accepted among 1..%d: %s", n, strings.Join(missing, " "))})
	}
	return out
}
