package check

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Violation is one breach of a safety property found by a checker.
type Violation struct {
	Checker string // the checker that found it, e.g. "mutual-exclusion"
	Kind    string // what was broken, e.g. "overlap", "fence-duplicate"
	Lock    string // the lock (resource) concerned
	Detail  string // the ops or writes involved, with their times
}

// String is the violation on one line: checker/kind, lock, detail.
func (v Violation) String() string {
	return fmt.Sprintf("%s/%s lock %q: %s", v.Checker, v.Kind, v.Lock, v.Detail)
}

// The checker names used in Violation.Checker and Summary.Checker.
const (
	CheckerMutualExclusion = "mutual-exclusion"
	CheckerFences          = "fences"
	CheckerStore           = "store"
	CheckerCounter         = "counter"
	CheckerLinearizable    = "linearizable"
	CheckerSemaphore       = "semaphore"
	CheckerShared          = "shared"
	CheckerFair            = "fair"
	CheckerLockDelay       = "lock-delay"
)

// Summary is what one checker made of a run.
type Summary struct {
	Checker    string
	Looked     int // ops or writes the checker took into account
	Violations []Violation
}

// Report summarises a run per checker. Linearizability is porcupine's
// verdict: Unknown means the check ran out of time and proves nothing.
type Report struct {
	Checks          []Summary
	Linearizability porcupine.CheckResult
	Unlinearized    []string // locks porcupine found no linearization for
}

// Config holds the checkers' parameters for Run.
type Config struct {
	Slack   time.Duration    // overlap MutualExclusion, Semaphores and SharedExclusion tolerate
	Model   LeaseModelParams // lease model of Linearizable, clock bounds of FairOrder and LockDelays
	Timeout time.Duration    // budget of Linearizable; 0 = none
	// LeasesMayOverlap is set for runs that lose lock keys on purpose:
	// then only real time orders grants for Fences (see FencesRealTime).
	LeasesMayOverlap bool
}

// Run applies every checker to one run's history. counters maps each
// resource used as a read-modify-write counter to its final value; a
// resource without an entry gets no Counter check.
func Run(ops []Op, writes []Write, counters map[string]int64, cfg Config) Report {
	var r Report
	r.add(CheckerMutualExclusion, countOps(ops, isLeaseOp), MutualExclusion(ops, cfg.Slack))
	fences := Fences
	if cfg.LeasesMayOverlap {
		fences = FencesRealTime
	}
	r.add(CheckerFences, countOps(ops, isFencedOp), fences(ops))
	r.add(CheckerStore, len(writes), Store(writes, ops))

	var increments int
	var counterViolations []Violation
	for _, lock := range slices.Sorted(maps.Keys(counters)) {
		var mine []Write
		for _, w := range writes {
			if w.Lock == lock && w.Kind == KindIncrement {
				mine = append(mine, w)
			}
		}
		increments += len(mine)
		counterViolations = append(counterViolations, Counter(mine, counters[lock])...)
	}
	r.add(CheckerCounter, increments, counterViolations)

	result, info := Linearizable(ops, cfg.Model, cfg.Timeout)
	r.Linearizability = result
	var lin []Violation
	if result != porcupine.Ok {
		r.Unlinearized = Unlinearized(ops, info)
	}
	if result == porcupine.Illegal {
		for _, lock := range r.Unlinearized {
			lin = append(lin, Violation{Checker: CheckerLinearizable, Kind: "illegal", Lock: lock,
				Detail: "no order of this lock's ops fits the lease model; see WriteVisualization"})
		}
	}
	r.add(CheckerLinearizable, len(operations(ops)), lin)

	// The richer grants: each finds nothing in a history without them.
	r.add(CheckerSemaphore, countOps(ops, func(op Op) bool { return isGrant(op) && op.Limit > 0 }), Semaphores(ops, cfg.Slack))
	r.add(CheckerShared, countOps(ops, func(op Op) bool { return isGrant(op) && op.Limit == 0 && op.Mode == ModeShared }),
		SharedExclusion(ops, cfg.Slack))
	r.add(CheckerFair, countOps(ops, func(op Op) bool { return isGrant(op) && op.Fair }), FairOrder(ops, cfg.Model.Rho))
	r.add(CheckerLockDelay, countOps(ops, func(op Op) bool { return isGrant(op) && op.LockDelay > 0 }), LockDelays(ops, cfg.Model))
	return r
}

func (r *Report) add(checker string, looked int, vs []Violation) {
	r.Checks = append(r.Checks, Summary{Checker: checker, Looked: looked, Violations: vs})
}

// OK reports whether no checker found a violation and porcupine found a
// linearization (an Unknown verdict is not a pass).
func (r Report) OK() bool {
	for _, c := range r.Checks {
		if len(c.Violations) > 0 {
			return false
		}
	}
	return r.Linearizability == porcupine.Ok
}

// Violations returns every checker's violations in one list.
func (r Report) Violations() []Violation {
	var all []Violation
	for _, c := range r.Checks {
		all = append(all, c.Violations...)
	}
	return all
}

// String is one line per checker, then one line per violation.
func (r Report) String() string {
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-16s looked at %5d, violations %d\n", c.Checker, c.Looked, len(c.Violations))
	}
	fmt.Fprintf(&b, "porcupine: %s\n", r.Linearizability)
	for _, v := range r.Violations() {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	return b.String()
}

func isLeaseOp(op Op) bool {
	return op.Kind == KindRelease || op.Kind == KindExtend || (op.Kind == KindAcquire && op.Outcome == OK)
}

func isGrant(op Op) bool { return op.Kind == KindAcquire && op.Outcome == OK }

func isFencedOp(op Op) bool {
	return op.Outcome == OK && (op.Kind == KindAcquire || op.Kind == KindExtend)
}

func countOps(ops []Op, keep func(Op) bool) int {
	n := 0
	for _, op := range ops {
		if keep(op) {
			n++
		}
	}
	return n
}
