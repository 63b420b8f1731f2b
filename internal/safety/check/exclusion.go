package check

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"
)

// grant is an OK acquire with its client-side validity interval
// [start, end): the time in which its client may act as the holder.
type grant struct {
	at       int // index of the acquire in the history
	op       Op
	start    time.Duration
	end      time.Duration
	endedBy  string // what set end last, for the violation's detail
	reusedBy []int  // later OK acquires of the same lock that got the same token
}

type grantKey struct{ lock, token string }

func (g *grant) String() string {
	return fmt.Sprintf("%s valid [%v, %v) (end from %s)", describeOp(g.at, g.op), g.start, g.end, g.endedBy)
}

// grants returns the OK acquires of ops, in history order, and finds each
// by (lock, token).
//
// The interval is the client's own conservative view:
//
//   - start is the acquire's Return: the client knows nothing before that.
//   - end is Call + Waited + Validity: the server measures waited_ms and
//     ttl_ms at the same moment, after it got the request, so this is never
//     later than the lease's real end.
//   - an OK extend by the holder replaces end with extend.Call + Validity.
//   - a release by the holder (any outcome: it stopped using the lock
//     before it asked) and a Refused extend (the lease is gone) cut end to
//     that op's Call.
//
// Unknown acquires make no grant: their client holds no token it could use.
// An Unknown extend leaves end alone: its client cannot count on it. Ops of
// another client that present the token do not change the holder's view.
func grants(ops []Op) ([]*grant, map[grantKey]*grant) {
	var all []*grant
	byKey := make(map[grantKey]*grant)
	var later []int // extends and releases, applied in Call order below
	for i, op := range ops {
		switch {
		case op.Kind == KindAcquire && op.Outcome == OK:
			g := &grant{at: i, op: op, start: op.Return, end: op.Call + op.Waited + op.Validity, endedBy: "acquire validity"}
			k := grantKey{op.Lock, op.Token}
			if first, ok := byKey[k]; ok {
				first.reusedBy = append(first.reusedBy, i)
				continue
			}
			byKey[k] = g
			all = append(all, g)
		case op.Kind == KindExtend || op.Kind == KindRelease:
			later = append(later, i)
		}
	}
	slices.SortStableFunc(later, func(a, b int) int { return cmp.Compare(ops[a].Call, ops[b].Call) })
	for _, i := range later {
		op := ops[i]
		g := byKey[grantKey{op.Lock, op.Token}]
		if g == nil || g.op.Client != op.Client {
			continue
		}
		switch {
		case op.Kind == KindExtend && op.Outcome == OK:
			g.end, g.endedBy = op.Call+op.Validity, describeOp(i, op)
		case op.Kind == KindRelease || (op.Kind == KindExtend && op.Outcome == Refused):
			if op.Call < g.end {
				g.end, g.endedBy = op.Call, describeOp(i, op)
			}
		}
	}
	return all, byKey
}

// MutualExclusion reports every pair of grants of one lock whose validity
// intervals (see grants) overlap by more than slack ("overlap"), and every
// token handed out twice ("token-reused"). An acquire of unknown outcome
// makes no interval: its client does not know it holds anything and must
// not use the lock, so whatever it may have been granted is the
// linearizability check's business, not this one's. Intervals are half-open: a grant may start exactly where the
// previous one ends. An interval that ends before it starts (the answer came
// back after the validity ran out) is empty and overlaps nothing.
//
// Only exclusive locks are compared here: shared holders and semaphore
// permits may overlap each other, and SharedExclusion and Semaphores judge
// them (a shared holder beside an exclusive one included).
func MutualExclusion(ops []Op, slack time.Duration) []Violation {
	all, _ := grants(ops)
	var out []Violation
	byLock := make(map[string][]*grant)
	for _, g := range all {
		for _, i := range g.reusedBy {
			out = append(out, Violation{Checker: CheckerMutualExclusion, Kind: "token-reused", Lock: g.op.Lock,
				Detail: fmt.Sprintf("%s and %s were granted the same token", describeOp(g.at, g.op), describeOp(i, ops[i]))})
		}
		if g.end > g.start && g.op.exclusive() {
			byLock[g.op.Lock] = append(byLock[g.op.Lock], g)
		}
	}
	for _, lock := range slices.Sorted(maps.Keys(byLock)) {
		gs := byLock[lock]
		slices.SortStableFunc(gs, func(a, b *grant) int { return cmp.Compare(a.start, b.start) })
		for i, a := range gs {
			// Sorted by start, so only the grants starting before a ends
			// (less slack) can overlap it.
			for _, b := range gs[i+1:] {
				if b.start >= a.end-slack {
					break
				}
				if overlap := min(a.end, b.end) - b.start; overlap > slack {
					out = append(out, Violation{Checker: CheckerMutualExclusion, Kind: "overlap", Lock: lock,
						Detail: fmt.Sprintf("%s overlaps %s by %v", a, b, overlap)})
				}
			}
		}
	}
	return out
}
