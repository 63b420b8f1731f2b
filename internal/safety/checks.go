package safety

import (
	"slices"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/go-distributed-lock/go-distributed-lock/internal/safety/check"
)

// checkers lists every checker in the order of the summary's columns. Only
// these fail a run (runCheckers): a checker of internal/safety/check left
// out of it would be run and ignored.
var checkers = []string{
	check.CheckerMutualExclusion, check.CheckerFences, check.CheckerStore,
	check.CheckerCounter, check.CheckerLinearizable,
	check.CheckerSemaphore, check.CheckerShared, check.CheckerFair, check.CheckerLockDelay,
}

// linearizeBudget bounds porcupine's search per run.
const linearizeBudget = 30 * time.Second

// runCheckers applies internal/safety/check to the run and compares the
// verdicts with sc.Expect and sc.Allow: an expected checker must find
// something, an allowed one may, every other must find nothing. It returns
// the violations per checker, with -1 for a linearizability check that ran
// out of time; a checker that had nothing to look at (no semaphore in the
// workload, no store write) and found nothing is left out, and the summary
// shows "–" for it.
func (h *Harness) runCheckers(ops []check.Op, sc Scenario) map[string]int {
	t := h.T
	rep := check.Run(ops, h.Store.Log(), h.Store.Counters(), check.Config{
		// No overlap is tolerated: lockd's ttl_ms already has the drift
		// allowance taken off.
		Slack: 0,
		// The drift lockd assumes (redsync's 1%), and room for a busy
		// 2-core machine between a client's clock reads and the wire.
		Model:   check.LeaseModelParams{Rho: 0.01, Eps: 50 * time.Millisecond},
		Timeout: linearizeBudget,
		// Where lock keys are lost on purpose, a lease can start on the
		// server long before its answer, so only real time orders grants.
		LeasesMayOverlap: slices.Contains(sc.Allow, check.CheckerMutualExclusion) ||
			slices.Contains(sc.Expect, check.CheckerMutualExclusion),
	})
	got := map[string]int{}
	for _, s := range rep.Checks {
		if s.Looked > 0 || len(s.Violations) > 0 {
			got[s.Checker] = len(s.Violations)
		}
	}
	if rep.Linearizability == porcupine.Unknown {
		got[check.CheckerLinearizable] = -1
	}
	for _, name := range checkers {
		n := got[name]
		switch {
		case slices.Contains(sc.Expect, name) && n <= 0:
			t.Errorf("checker %s found no violation (-1: no verdict in time); this scenario must produce some", name)
		case n < 0:
			// Porcupine's search grows with the ops of unknown outcome;
			// running out of time proves nothing either way, so it is
			// reported in the table, not failed.
			t.Logf("checker %s: no verdict within %v", name, linearizeBudget)
		case !slices.Contains(sc.Expect, name) && !slices.Contains(sc.Allow, name) && n > 0:
			t.Errorf("checker %s: %d violations", name, n)
		}
	}
	if t.Failed() || len(rep.Violations()) > 0 {
		// Allowed violations too: which grants overlapped, and when,
		// against the fault timeline.
		t.Logf("checkers:\n%s", rep)
	}
	return got
}
