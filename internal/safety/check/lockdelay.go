package check

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// LockDelays checks that no acquire is granted inside a lock-delay
// ("grant-in-delay"): once a lease with a LockDelay d expires without
// being released, its name stays refused, for every kind and mode, until d
// after the expiry. Only certain breaches are reported.
//
// The expiry E of such a lease L (the server's, on the client's clock
// within params' Rho and Eps) is bracketed from the holder's own ops, in
// Call order, up to its first refused extend or release:
//
//   - lo, E's lower bound: from the last OK acquire or extend O,
//     the larger of O.Call + TTL·(1−Rho) − Eps (the server took it after
//     the call) and the end of O's validity interval (see grants); an
//     extend of unknown outcome U may take effect later with a shorter TTL,
//     so lo is at most U.Call + TTL·(1−Rho) − Eps.
//   - hi, E's upper bound: the largest O.Return + TTL·(1+Rho) + Eps over the
//     OK acquire and extends, and no bound at all after an extend of
//     unknown outcome; a refused extend or release R proves the lease gone
//     by R.Return, so hi is at most that.
//
// The delay then certainly runs from hi until lo + d·(1−Rho). An OK
// acquire B of the name, other than L, breaches it when
//
//   - B was granted after L expired: B.Call >= hi; or, if L was an
//     exclusive lock, B was granted after L (L.Return < B.Call, or B's
//     fence is higher, fences rising with every grant of the name), since
//     any grant after L before E would overlap it, which is no better;
//   - B was granted before the delay surely ended: B.Return < lo + d·(1−Rho);
//   - L was not released first: no OK or unknown release of L by its
//     holder was sent before min(hi, B.Return). A release sent after hi
//     found the lease expired and changed nothing.
//
// Bounds that contradict each other (a lease refused before it could have
// expired) prove nothing here; Linearizable judges those.
func LockDelays(ops []Op, params LeaseModelParams) []Violation {
	byLock := make(map[string][]int) // OK acquires per name
	var leases []int                 // the first OK acquire of each token with a lock-delay
	seen := make(map[grantKey]bool)
	holderOps := make(map[grantKey][]int) // extends and releases by the holder, below
	for i, op := range ops {
		k := grantKey{op.Lock, op.Token}
		switch {
		case op.Kind == KindAcquire && op.Outcome == OK:
			byLock[op.Lock] = append(byLock[op.Lock], i)
			if !seen[k] && op.LockDelay > 0 {
				leases = append(leases, i)
			}
			seen[k] = true
		case op.Kind == KindExtend || op.Kind == KindRelease:
			holderOps[k] = append(holderOps[k], i)
		}
	}

	var out []Violation
	for _, at := range leases {
		l := ops[at]
		lo, hi := params.window(l.TTL, l.Call, l.Return)
		lo = max(lo, l.Call+l.Waited+l.Validity)
		var unknownLo []time.Duration // the lower bounds of extends of unknown outcome
		released := forever           // the earliest Call of a release that may have taken effect
		later := slices.Clone(holderOps[grantKey{l.Lock, l.Token}])
		slices.SortStableFunc(later, func(a, b int) int { return cmp.Compare(ops[a].Call, ops[b].Call) })
	walk:
		for _, j := range later {
			x := ops[j]
			if x.Client != l.Client || x.Call < l.Call {
				continue
			}
			xlo, xhi := params.window(x.TTL, x.Call, x.Return)
			switch {
			case x.Outcome == Refused:
				hi = min(hi, x.Return)
				break walk
			case x.Kind == KindRelease:
				released = min(released, x.Call)
			case x.Outcome == OK:
				lo, hi = max(xlo, x.Call+x.Validity), max(hi, xhi)
			default: // an extend of unknown outcome
				unknownLo = append(unknownLo, xlo)
				hi = forever
			}
		}
		for _, u := range unknownLo {
			lo = min(lo, u)
		}
		if lo > hi {
			continue
		}
		dLo, _ := params.delay(l.LockDelay)
		until := lo + dLo
		for _, j := range byLock[l.Lock] {
			b := ops[j]
			if j == at || b.Token == l.Token || b.Return >= until || released < min(hi, b.Return) {
				continue
			}
			switch {
			case b.Call >= hi:
				out = append(out, Violation{Checker: CheckerLockDelay, Kind: "grant-in-delay", Lock: l.Lock,
					Detail: fmt.Sprintf("%s expired unreleased in [%v, %v], so the name was refused until at least %v; %s was sent after the expiry and answered before that",
						describeOp(at, l), lo, hi, until, describeOp(j, b))})
			case l.exclusive() && (l.Return < b.Call || b.Fence > l.Fence):
				out = append(out, Violation{Checker: CheckerLockDelay, Kind: "grant-in-delay", Lock: l.Lock,
					Detail: fmt.Sprintf("%s expired unreleased in [%v, %v], so the name was refused until at least %v; %s was granted after it and answered before that",
						describeOp(at, l), lo, hi, until, describeOp(j, b))})
			}
		}
	}
	return out
}
