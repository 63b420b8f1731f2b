package check

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// holdersByName returns the grants of ops (see grants) whose validity
// interval, shortened by slack, is not empty, per name and sorted by start;
// keep picks the names to return. Shortening every interval by slack makes
// any number of them share more than slack exactly when the shortened ones
// share a moment, so one sweep over starts finds every such set.
func holdersByName(ops []Op, slack time.Duration, keep func([]*grant) bool) map[string][]*grant {
	all, _ := grants(ops)
	byLock := make(map[string][]*grant)
	for _, g := range all {
		if g.end-slack > g.start {
			byLock[g.op.Lock] = append(byLock[g.op.Lock], g)
		}
	}
	for lock, gs := range byLock {
		if !keep(gs) {
			delete(byLock, lock)
			continue
		}
		slices.SortStableFunc(gs, func(a, b *grant) int { return cmp.Compare(a.start, b.start) })
	}
	return byLock
}

// Semaphores checks the permits of semaphores (OK acquires with a Limit),
// per name, on the validity intervals of MutualExclusion (see grants),
// which never outlast the server's lease, so holders whose intervals share
// more than slack certainly held at once:
//
//   - never more holders at once than their limit ("over-limit");
//   - never holders at once that asked for different limits: the second
//     should have been refused with limit_mismatch ("limit-mismatch");
//   - never a permit at once with a lock grant of the same name: a name is
//     one kind at a time ("kind-overlap").
//
// Each is reported at the start of every grant that finds it.
func Semaphores(ops []Op, slack time.Duration) []Violation {
	byLock := holdersByName(ops, slack, func(gs []*grant) bool {
		return slices.ContainsFunc(gs, func(g *grant) bool { return g.op.Limit > 0 })
	})
	var out []Violation
	for _, lock := range slices.Sorted(maps.Keys(byLock)) {
		var active []*grant // the holders at the current start, in start order
		for _, g := range byLock[lock] {
			active = slices.DeleteFunc(active, func(a *grant) bool { return a.end-slack <= g.start })
			active = append(active, g)
			var permits []*grant
			var other *grant // a holder of the other kind
			for _, a := range active {
				if a.op.Limit > 0 {
					permits = append(permits, a)
				}
				if (a.op.Limit > 0) != (g.op.Limit > 0) && other == nil {
					other = a
				}
			}
			if other != nil {
				out = append(out, Violation{Checker: CheckerSemaphore, Kind: "kind-overlap", Lock: lock,
					Detail: fmt.Sprintf("%s was held at once with %s", g, other)})
			}
			if g.op.Limit == 0 {
				continue
			}
			if i := slices.IndexFunc(permits, func(a *grant) bool { return a.op.Limit != g.op.Limit }); i >= 0 {
				out = append(out, Violation{Checker: CheckerSemaphore, Kind: "limit-mismatch", Lock: lock,
					Detail: fmt.Sprintf("%s was held at once with %s", g, permits[i])})
			}
			limit := slices.MinFunc(permits, func(a, b *grant) int { return cmp.Compare(a.op.Limit, b.op.Limit) }).op.Limit
			if len(permits) > limit {
				names := make([]string, len(permits))
				for i, a := range permits {
					names[i] = a.String()
				}
				out = append(out, Violation{Checker: CheckerSemaphore, Kind: "over-limit", Lock: lock,
					Detail: fmt.Sprintf("%d permits held at once, limit %d: %s", len(permits), limit, strings.Join(names, ", "))})
			}
		}
	}
	return out
}

// SharedExclusion reports every shared holder of a lock whose validity
// interval (see grants) overlaps an exclusive holder's by more than slack
// ("shared-overlap"). Shared holders may overlap each other; two exclusive
// holders are MutualExclusion's business. Semaphore permits are not locks
// and are left to Semaphores.
func SharedExclusion(ops []Op, slack time.Duration) []Violation {
	isShared := func(g *grant) bool { return g.op.Limit == 0 && g.op.Mode == ModeShared }
	byLock := holdersByName(ops, slack, func(gs []*grant) bool { return slices.ContainsFunc(gs, isShared) })
	var out []Violation
	for _, lock := range slices.Sorted(maps.Keys(byLock)) {
		gs := slices.DeleteFunc(byLock[lock], func(g *grant) bool { return g.op.Limit > 0 })
		for i, a := range gs {
			for _, b := range gs[i+1:] {
				if b.start >= a.end-slack {
					break
				}
				if isShared(a) == isShared(b) {
					continue
				}
				if overlap := min(a.end, b.end) - b.start; overlap > slack {
					out = append(out, Violation{Checker: CheckerShared, Kind: "shared-overlap", Lock: lock,
						Detail: fmt.Sprintf("%s overlaps %s by %v", a, b, overlap)})
				}
			}
		}
	}
	return out
}
