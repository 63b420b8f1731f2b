package check

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"
)

// acquire is an OK acquire with its grant's interval (see grants).
type acquire struct {
	at         int
	op         Op
	start, end time.Duration
}

// precedes reports whether a was granted before b for certain, given that
// a's interval starts first: a returned before b was sent, or a's lease
// ended by b's start.
func precedes(a, b acquire) bool { return a.op.Return < b.op.Call || a.end <= b.start }

// Fences checks the fencing tokens of OK acquires and extends, per lock:
//
//   - no two grants share a fence ("fence-duplicate");
//   - a grant ordered after another has a higher fence ("fence-regression");
//   - an OK extend reports its grant's fence ("extend-fence"), and there is
//     a grant for it at all ("extend-without-grant").
//
// Grants are ordered by interval start (see grants), but only where that
// order is certain. A before B is certain when A returned before B was
// sent, or when B's interval is not empty: B's lease then lasted past B's
// start, so it could not have been granted before A without overlapping A's
// lease on the server. When B's interval is empty (its validity ran out
// while the answer was under way, as under heavy latency), B may have been
// granted long before A returned, and a lower fence proves nothing. Nor
// does it when A's lease still ran at B's start and A had not returned
// before B was sent: the two held the lock at once (MutualExclusion reports
// that, and a scenario that loses lock keys may allow it), so neither was
// granted first.
//
// On a name that is ever held shared or as a semaphore, only real time
// orders grants, as in FencesRealTime: holders there may overlap by right.
func Fences(ops []Op) []Violation { return fences(ops, false) }

// FencesRealTime is Fences for a run whose lock keys may vanish (deleted,
// or lost with Redis's data): then a grant's lease may have started on the
// server long before its answer, while another grant came and went, so
// intervals order nothing, and only real time does: a grant whose acquire
// returned before another's was sent must have the lower fence.
func FencesRealTime(ops []Op) []Violation { return fences(ops, true) }

func fences(ops []Op, realTimeOnly bool) []Violation {
	all, byKey := grants(ops)
	ends := make(map[int]time.Duration, len(all))
	for _, g := range all {
		ends[g.at] = g.end
	}
	byLock := make(map[string][]acquire)
	var out []Violation
	for i, op := range ops {
		switch {
		case op.Kind == KindAcquire && op.Outcome == OK:
			end, ok := ends[i]
			if !ok { // a reused token: judge it by its own answer
				end = op.Call + op.Waited + op.Validity
			}
			byLock[op.Lock] = append(byLock[op.Lock], acquire{at: i, op: op, start: op.Return, end: end})
		case op.Kind == KindExtend && op.Outcome == OK:
			g := byKey[grantKey{op.Lock, op.Token}]
			switch {
			case g == nil:
				out = append(out, Violation{Checker: CheckerFences, Kind: "extend-without-grant", Lock: op.Lock,
					Detail: fmt.Sprintf("%s extended a token no OK acquire of this lock returned", describeOp(i, op))})
			case op.Fence != g.op.Fence:
				out = append(out, Violation{Checker: CheckerFences, Kind: "extend-fence", Lock: op.Lock,
					Detail: fmt.Sprintf("%s reports fence %d, its grant %s has %d", describeOp(i, op), op.Fence, describeOp(g.at, g.op), g.op.Fence)})
			}
		}
	}

	shared := sharedNames(ops)
	for _, lock := range slices.Sorted(maps.Keys(byLock)) {
		// Shared holders and semaphore permits overlap by right, so on
		// their names intervals order nothing either.
		realTimeOnly := realTimeOnly || shared[lock]
		precedes := precedes
		if realTimeOnly {
			precedes = func(a, b acquire) bool { return a.op.Return < b.op.Call }
		}
		as := byLock[lock]
		slices.SortStableFunc(as, func(a, b acquire) int { return cmp.Compare(a.start, b.start) })
		first := make(map[int64]acquire)
		// best[k] is the position of the highest fence among as[:k+1].
		best := make([]int, len(as))
		for k, b := range as {
			if a, ok := first[b.op.Fence]; ok {
				out = append(out, Violation{Checker: CheckerFences, Kind: "fence-duplicate", Lock: lock,
					Detail: fmt.Sprintf("%s and %s got the same fence %d", describeOp(a.at, a.op), describeOp(b.at, b.op), b.op.Fence)})
			} else {
				first[b.op.Fence] = b
			}

			before := k // how many acquires certainly precede b
			if b.end <= b.start || realTimeOnly {
				before = sort.Search(k, func(j int) bool { return as[j].start >= b.op.Call })
			}
			if before > 0 {
				// The highest fence before b, among the grants certainly
				// before it; without overlaps that is always the first.
				top := best[before-1]
				if !precedes(as[top], b) {
					top = -1
					for j, a := range as[:before] {
						if precedes(a, b) && (top < 0 || a.op.Fence > as[top].op.Fence) {
							top = j
						}
					}
				}
				if top >= 0 && as[top].op.Fence > b.op.Fence {
					a := as[top]
					out = append(out, Violation{Checker: CheckerFences, Kind: "fence-regression", Lock: lock,
						Detail: fmt.Sprintf("%s (valid from %v) precedes %s (valid from %v) but has the higher fence",
							describeOp(a.at, a.op), a.start, describeOp(b.at, b.op), b.start)})
				}
			}

			best[k] = k
			if k > 0 && as[best[k-1]].op.Fence >= b.op.Fence {
				best[k] = best[k-1]
			}
		}
	}
	return out
}

// sharedNames returns the names some acquire of ops asks to hold shared or
// as a semaphore: names whose holders may overlap.
func sharedNames(ops []Op) map[string]bool {
	names := make(map[string]bool)
	for _, op := range ops {
		if op.Kind == KindAcquire && !op.exclusive() {
			names[op.Lock] = true
		}
	}
	return names
}
