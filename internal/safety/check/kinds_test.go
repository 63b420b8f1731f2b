package check

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The helpers of check_test.go, dressed as the richer grants.

func permit(op Op, limit int) Op {
	op.Limit = limit
	return op
}

func inMode(op Op, mode string) Op {
	op.Mode = mode
	return op
}

// fairly marks op as a fair wait that lockd confirmed in the queue queued
// milliseconds before it answered.
func fairly(op Op, queued int) Op {
	op.Fair, op.Queued = true, ms*time.Duration(queued)
	return op
}

func withDelay(op Op, delay int) Op {
	op.LockDelay = ms * time.Duration(delay)
	return op
}

func TestMutualExclusionLeavesSharedHolders(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want []string
	}{
		{name: "semaphore permits overlap", ops: []Op{
			permit(acquired(1, 0, 10, "a", 1), 2), permit(acquired(2, 500, 510, "b", 2), 2),
		}},
		{name: "shared holders overlap", ops: []Op{
			inMode(acquired(1, 0, 10, "a", 1), ModeShared), inMode(acquired(2, 500, 510, "b", 2), ModeShared),
		}},
		{name: "explicit exclusive mode still excludes", ops: []Op{
			inMode(acquired(1, 0, 10, "a", 1), ModeExclusive), inMode(acquired(2, 500, 510, "b", 2), ModeExclusive),
		}, want: []string{"overlap"}},
		{name: "two exclusive holders on a name also held shared", ops: []Op{
			inMode(acquired(3, 0, 5, "s", 1), ModeShared), released(3, 6, 7, "s", OK),
			acquired(1, 10, 20, "a", 2), acquired(2, 500, 510, "b", 3),
		}, want: []string{"overlap"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkKinds(t, MutualExclusion(tt.ops, 0), tt.want)
		})
	}
}

func TestSemaphores(t *testing.T) {
	tests := []struct {
		name  string
		ops   []Op
		slack time.Duration
		want  []string
	}{
		{name: "two permits of two", ops: []Op{
			permit(acquired(1, 0, 10, "a", 1), 2), permit(acquired(2, 500, 510, "b", 2), 2),
		}},
		{name: "three permits of two at once", ops: []Op{
			permit(acquired(1, 0, 10, "a", 1), 2), permit(acquired(2, 500, 510, "b", 2), 2),
			permit(acquired(3, 800, 810, "c", 3), 2),
		}, want: []string{"over-limit"}},
		{name: "three permits of two, never all at once", ops: []Op{
			// a [10, 1000), b [510, 1500), c [1200, 2190)
			permit(acquired(1, 0, 10, "a", 1), 2), permit(acquired(2, 500, 510, "b", 2), 2),
			permit(acquired(3, 1190, 1200, "c", 3), 2),
		}},
		{name: "a release frees a permit", ops: []Op{
			permit(acquired(1, 0, 10, "a", 1), 2), permit(acquired(2, 500, 510, "b", 2), 2),
			released(1, 700, 705, "a", OK), permit(acquired(3, 700, 710, "c", 3), 2),
		}},
		{name: "over the limit within slack", ops: []Op{
			permit(acquired(1, 0, 10, "a", 1), 2), permit(acquired(2, 500, 510, "b", 2), 2),
			permit(acquired(3, 990, 996, "c", 3), 2),
		}, slack: 5 * ms},
		{name: "over the limit beyond slack", ops: []Op{
			permit(acquired(1, 0, 10, "a", 1), 2), permit(acquired(2, 500, 510, "b", 2), 2),
			permit(acquired(3, 990, 994, "c", 3), 2),
		}, slack: 5 * ms, want: []string{"over-limit"}},
		{name: "one permit is a lock", ops: []Op{
			permit(acquired(1, 0, 10, "a", 1), 1), permit(acquired(2, 500, 510, "b", 2), 1),
		}, want: []string{"over-limit"}},
		{name: "holders with different limits", ops: []Op{
			permit(acquired(1, 0, 10, "a", 1), 2), permit(acquired(2, 500, 510, "b", 2), 3),
		}, want: []string{"limit-mismatch"}},
		{name: "the limit may change once the semaphore is free", ops: []Op{
			permit(acquired(1, 0, 10, "a", 1), 2), released(1, 100, 110, "a", OK), permit(acquired(2, 200, 210, "b", 2), 3),
		}},
		{name: "a permit beside a lock holder", ops: []Op{
			acquired(1, 0, 10, "a", 1), permit(acquired(2, 500, 510, "b", 2), 5),
		}, want: []string{"kind-overlap"}},
		{name: "permits of other names do not count", ops: []Op{
			permit(acquired(1, 0, 10, "a", 1), 1), onLock(permit(acquired(2, 500, 510, "b", 1), 1), "M"),
		}},
		{name: "exclusive locks are not judged here", ops: []Op{
			acquired(1, 0, 10, "a", 1), acquired(2, 500, 510, "b", 2),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkKinds(t, Semaphores(tt.ops, tt.slack), tt.want)
		})
	}
}

func TestSharedExclusion(t *testing.T) {
	shared := func(op Op) Op { return inMode(op, ModeShared) }
	tests := []struct {
		name  string
		ops   []Op
		slack time.Duration
		want  []string
	}{
		{name: "shared holders overlap each other", ops: []Op{
			shared(acquired(1, 0, 10, "a", 1)), shared(acquired(2, 500, 510, "b", 2)), shared(acquired(3, 600, 610, "c", 3)),
		}},
		{name: "a shared holder inside an exclusive lease", ops: []Op{
			acquired(1, 0, 10, "a", 1), shared(acquired(2, 500, 510, "b", 2)),
		}, want: []string{"shared-overlap"}},
		{name: "an exclusive holder among shared ones", ops: []Op{
			shared(acquired(1, 0, 10, "a", 1)), shared(acquired(2, 100, 110, "b", 2)),
			inMode(acquired(3, 500, 510, "c", 3), ModeExclusive),
		}, want: []string{"shared-overlap", "shared-overlap"}},
		{name: "exclusive after the shared holders released", ops: []Op{
			shared(acquired(1, 0, 10, "a", 1)), shared(acquired(2, 100, 110, "b", 2)),
			released(1, 300, 305, "a", OK), released(2, 310, 315, "b", OK), acquired(3, 312, 320, "c", 3),
		}},
		{name: "shared after the exclusive lease expired", ops: []Op{
			acquired(1, 0, 10, "a", 1), shared(acquired(2, 1500, 1510, "b", 2)),
		}},
		{name: "overlap within slack", ops: []Op{
			acquired(1, 0, 10, "a", 1), shared(acquired(2, 990, 996, "b", 2)),
		}, slack: 5 * ms},
		{name: "two exclusive holders are mutual exclusion's", ops: []Op{
			shared(acquired(1, 0, 10, "s", 1)), released(1, 20, 25, "s", OK),
			acquired(2, 100, 110, "a", 2), acquired(3, 500, 510, "b", 3),
		}},
		{name: "semaphore permits are not locks", ops: []Op{
			permit(acquired(1, 0, 10, "a", 1), 3), shared(onLock(acquired(2, 500, 510, "b", 2), "M")),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkKinds(t, SharedExclusion(tt.ops, tt.slack), tt.want)
		})
	}
}

func TestFairOrder(t *testing.T) {
	// A waits from 0 and is answered at 1000, lockd having queued it 900ms
	// before it answered: with Rho 1%, A was queued by 1000 - 891 = 109ms.
	a := fairly(acquired(1, 0, 1000, "a", 3), 900)
	tests := []struct {
		name string
		ops  []Op
		want []string
	}{
		{name: "in queue order", ops: []Op{
			acquired(3, 0, 5, "h", 1), a, fairly(acquired(2, 200, 1100, "b", 4), 850),
		}},
		{name: "a later wait granted first", ops: []Op{
			acquired(3, 0, 5, "h", 1), a, fairly(acquired(2, 200, 500, "b", 2), 250),
		}, want: []string{"fair-order"}},
		{name: "sent before the earlier wait was surely queued", ops: []Op{
			// B's request may have reached the queue first.
			acquired(3, 0, 5, "h", 1), a, fairly(acquired(2, 100, 500, "b", 2), 350),
		}},
		{name: "drift is allowed for", ops: []Op{
			// 1000 - 900 = 100 < 105, but A may have been queued as late as 109.
			acquired(3, 0, 5, "h", 1), a, fairly(acquired(2, 105, 500, "b", 2), 350),
		}},
		{name: "a non-fair acquire jumps the queue", ops: []Op{
			acquired(3, 0, 5, "h", 1), a, acquired(2, 300, 310, "b", 2),
		}, want: []string{"fair-order"}},
		{name: "a shared holder jumps a queued exclusive waiter", ops: []Op{
			inMode(acquired(3, 0, 5, "h", 1), ModeShared), a, inMode(acquired(2, 300, 310, "b", 2), ModeShared),
		}, want: []string{"fair-order"}},
		{name: "a permit jumps the queue", ops: []Op{
			permit(acquired(3, 0, 5, "h", 1), 1), permit(a, 1), permit(acquired(2, 300, 310, "b", 2), 1),
		}, want: []string{"fair-order"}},
		{name: "no queued time: no proof of when the wait began", ops: []Op{
			acquired(3, 0, 5, "h", 1), fairly(acquired(1, 0, 1000, "a", 3), 0), fairly(acquired(2, 200, 500, "b", 2), 250),
		}},
		{name: "a waiter that gave up is owed nothing", ops: []Op{
			acquired(3, 0, 5, "h", 1), fairly(acquireFailed(1, 0, 1000, Refused), 0), fairly(acquired(2, 200, 500, "b", 2), 250),
		}},
		{name: "other names do not interfere", ops: []Op{
			acquired(3, 0, 5, "h", 1), a, onLock(acquired(2, 300, 310, "b", 2), "M"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkKinds(t, FairOrder(tt.ops, testModel.Rho), tt.want)
		})
	}
}

func TestLockDelays(t *testing.T) {
	// L is granted over [0, 10] for a second with a lock-delay of 2s. With
	// Rho 1% and Eps 10ms it expires in [1000, 1030] (its validity interval
	// ends at 1000), and the name stays refused from 1030 until at least
	// 1000 + 1980 = 2980.
	l := withDelay(acquired(1, 0, 10, "a", 1), 2000)
	shared := func(op Op) Op { return inMode(op, ModeShared) }
	tests := []struct {
		name string
		ops  []Op
		want []string
	}{
		{name: "granted after the delay", ops: []Op{
			l, acquired(2, 3000, 3010, "b", 2),
		}},
		{name: "granted inside the delay", ops: []Op{
			l, acquired(2, 1500, 1510, "b", 2),
		}, want: []string{"grant-in-delay"}},
		{name: "answered when the delay may have ended", ops: []Op{
			l, acquired(2, 2900, 2990, "b", 2),
		}},
		{name: "sent when the lease may not have expired yet", ops: []Op{
			// Nor was it surely granted after L: it may be L's overlap
			// that is wrong, and that is mutual exclusion's to say.
			shared(l), shared(acquired(2, 1020, 1500, "b", 2)),
		}},
		{name: "an exclusive lease: any grant after it, before the delay's end", ops: []Op{
			// B waited from 500; granted after L (higher fence), so after
			// L expired or while L still ran, and either is wrong.
			l, acquired(2, 500, 1600, "b", 2),
		}, want: []string{"grant-in-delay"}},
		{name: "a grant before the lease is not after it", ops: []Op{
			acquired(2, 0, 5, "b", 1), released(2, 100, 110, "b", OK),
			withDelay(acquired(1, 200, 210, "a", 2), 2000),
		}},
		{name: "released, then granted", ops: []Op{
			l, released(1, 300, 310, "a", OK), acquired(2, 1500, 1510, "b", 2),
		}},
		{name: "release of unknown outcome may have ended it", ops: []Op{
			l, released(1, 300, 900, "a", Unknown), acquired(2, 1500, 1510, "b", 2),
		}},
		{name: "release sent after the expiry changes nothing", ops: []Op{
			l, released(1, 1100, 1110, "a", OK), acquired(2, 1500, 1510, "b", 2),
		}, want: []string{"grant-in-delay"}},
		{name: "refused extend: the lease was gone", ops: []Op{
			l, extendFailed(1, 1200, 1210, "a", Refused), acquired(2, 1500, 1510, "b", 2),
		}, want: []string{"grant-in-delay"}},
		{name: "extend moves the expiry", ops: []Op{
			// Expires in [1900, 1930] then, refused until at least 3880.
			l, extended(1, 900, 910, "a", 1), acquired(2, 3000, 3010, "b", 2),
		}, want: []string{"grant-in-delay"}},
		{name: "after the extended delay", ops: []Op{
			l, extended(1, 900, 910, "a", 1), acquired(2, 3900, 3910, "b", 2),
		}},
		{name: "unknown extend: expiry unbounded, but an exclusive lease still binds", ops: []Op{
			l, extendFailed(1, 900, 5000, "a", Unknown), acquired(2, 1500, 1510, "b", 2),
		}, want: []string{"grant-in-delay"}},
		{name: "unknown extend of a shared lease proves nothing", ops: []Op{
			shared(l), extendFailed(1, 900, 5000, "a", Unknown), shared(acquired(2, 1500, 1510, "b", 2)),
		}},
		{name: "an expired permit closes the whole semaphore", ops: []Op{
			permit(l, 3), permit(acquired(2, 1500, 1510, "b", 2), 3),
		}, want: []string{"grant-in-delay"}},
		{name: "no lock-delay", ops: []Op{
			acquired(1, 0, 10, "a", 1), acquired(2, 1500, 1510, "b", 2),
		}},
		{name: "other names do not interfere", ops: []Op{
			l, onLock(acquired(2, 1500, 1510, "b", 1), "M"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkKinds(t, LockDelays(tt.ops, testModel), tt.want)
		})
	}
}

// TestFencesOnSharedNames: a permit answered late may have been granted
// before another permit that came and went; on an exclusive lock its
// interval would prove the order.
func TestFencesOnSharedNames(t *testing.T) {
	ops := []Op{
		acquired(1, 0, 10, "a", 5),
		withValidity(acquired(2, 5, 1200, "b", 4), 1500, 0),
	}
	checkKinds(t, Fences(ops), []string{"fence-regression"})
	var permits []Op
	for _, op := range ops {
		permits = append(permits, permit(op, 2))
	}
	checkKinds(t, Fences(permits), nil)
	// Real time still binds: c was sent after both answers.
	checkKinds(t, Fences(append(permits, permit(acquired(3, 1300, 1310, "c", 3), 2))), []string{"fence-regression"})
}

func TestLinearizableRicherGrants(t *testing.T) {
	// As in TestLinearizable, a lease acquired over [0, 10] expires in
	// [980, 1030]; a lock-delay of 2s adds [1980, 2020].
	l := withDelay(acquired(1, 0, 10, "a", 1), 2000)
	tests := []struct {
		name string
		ops  []Op
		want porcupine.CheckResult
	}{
		{name: "refused inside the lock-delay", ops: []Op{
			l, acquireFailed(2, 1500, 1510, Refused),
		}, want: porcupine.Ok},
		{name: "refused after the lock-delay", ops: []Op{
			l, acquireFailed(2, 3100, 3110, Refused),
		}, want: porcupine.Illegal},
		{name: "granted inside the lock-delay", ops: []Op{
			l, acquired(2, 1500, 1510, "b", 2),
		}, want: porcupine.Illegal},
		{name: "granted after the lock-delay", ops: []Op{
			l, acquired(2, 3000, 3010, "b", 2),
		}, want: porcupine.Ok},
		{name: "a release ends the lease without a delay", ops: []Op{
			l, released(1, 100, 110, "a", OK), acquired(2, 200, 210, "b", 2),
		}, want: porcupine.Ok},
		{name: "refused while a fair queue may hold waiters", ops: []Op{
			fairly(acquired(1, 0, 10, "a", 1), 0), released(1, 100, 110, "a", OK), acquireFailed(2, 200, 210, Refused),
		}, want: porcupine.Ok},
		{name: "a fair queue still admits one holder", ops: []Op{
			fairly(acquired(1, 0, 10, "a", 1), 0), fairly(acquired(2, 500, 510, "b", 2), 0),
		}, want: porcupine.Illegal},
		{name: "shared holders are not modelled", ops: []Op{
			inMode(acquired(1, 0, 10, "a", 1), ModeShared), inMode(acquired(2, 500, 510, "b", 2), ModeShared),
		}, want: porcupine.Ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := Linearizable(tt.ops, testModel, 10*time.Second)
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}

	// A name left out must not shift the others' partitions.
	ops := []Op{
		onLock(permit(acquired(1, 0, 10, "a", 1), 2), "A"), onLock(permit(acquired(2, 5, 15, "b", 2), 2), "A"),
		acquired(3, 0, 10, "c", 1), acquired(4, 500, 510, "d", 2),
	}
	result, info := Linearizable(ops, testModel, 10*time.Second)
	if got, want := Unlinearized(ops, info), []string{"L"}; result != porcupine.Illegal || !slices.Equal(got, want) {
		t.Errorf("got %s %v, want %s %v", result, got, porcupine.Illegal, want)
	}
}

func TestRunRicherGrants(t *testing.T) {
	ops := []Op{
		// S: three permits of two at once.
		onLock(permit(acquired(1, 0, 10, "a", 1), 2), "S"), onLock(permit(acquired(2, 100, 110, "b", 2), 2), "S"),
		onLock(permit(acquired(3, 200, 210, "c", 3), 2), "S"),
		// R: a shared holder inside an exclusive lease.
		onLock(acquired(4, 0, 10, "d", 1), "R"), onLock(inMode(acquired(5, 100, 110, "e", 2), ModeShared), "R"),
		// F: g waits from 10, h from 200; f releases at 300 and h, not
		// g, gets the lock.
		onLock(acquired(6, 0, 5, "f", 1), "F"), onLock(released(6, 300, 305, "f", OK), "F"),
		onLock(fairly(acquired(8, 200, 310, "h", 2), 0), "F"), onLock(released(8, 400, 405, "h", OK), "F"),
		onLock(fairly(withValidity(acquired(7, 10, 410, "g", 3), 1000, 390), 350), "F"),
		// D: a grant inside a lock-delay.
		onLock(withDelay(acquired(9, 0, 10, "i", 1), 2000), "D"), onLock(acquired(10, 1500, 1510, "j", 2), "D"),
	}
	r := Run(ops, nil, nil, Config{Model: testModel, Timeout: 10 * time.Second})
	got := make(map[string]int)
	for _, c := range r.Checks {
		got[c.Checker] = len(c.Violations)
	}
	want := map[string]int{
		CheckerMutualExclusion: 0, CheckerSemaphore: 1, CheckerShared: 1, CheckerFair: 1, CheckerLockDelay: 1,
	}
	for checker, n := range want {
		if got[checker] != n {
			t.Errorf("%s: got %d violations, want %d\n%s", checker, got[checker], n, r)
		}
	}
	// D is an exclusive lock, so the lease model judges it too; F's
	// history fits a lock that is not fair.
	if want := []string{"D"}; r.Linearizability != porcupine.Illegal || !slices.Equal(r.Unlinearized, want) {
		t.Errorf("got %s %v, want Illegal %v", r.Linearizability, r.Unlinearized, want)
	}
}

// simulateQueue runs n acquires of one name through a correct lockd with
// a fair queue, and returns what the clients saw. Every acquire is fair,
// with a lock-delay; kind "exclusive" makes them exclusive locks,
// "shared" mixes shared and exclusive ones, "semaphore" asks for 3
// permits. Most requests travel in a few milliseconds, but one in ten is
// held up for up to 300ms, so the queue's order is not the order of the
// calls. A holder releases after a while, or too late (refused), or dies.
func simulateQueue(seed uint64, n int, kind string) []Op {
	const (
		ttl    = time.Second
		margin = 10 * ms // the drift allowance lockd takes off ttl_ms
		delay  = 300 * ms
	)
	rng := rand.New(rand.NewPCG(seed, seed^0xfa1e))
	dur := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) }
	lat := func() time.Duration {
		if rng.IntN(10) == 0 {
			return dur(0, 300*ms)
		}
		return dur(0, 3*ms)
	}

	type holder struct {
		exclusive bool
		end       time.Duration // released or expired
		closed    time.Duration // end of the lock-delay; end when released
	}
	var holders []holder
	grantable := func(op Op, t time.Duration) bool {
		var live int
		for _, h := range holders {
			switch {
			case h.end <= t && t < h.closed:
				return false
			case h.end > t:
				live++
				if h.exclusive || op.exclusive() {
					return false
				}
			}
		}
		return op.Limit == 0 || live < op.Limit
	}

	var ops []Op
	var arrive, last time.Duration
	arrive = time.Second // every call after 0
	var fence int64
	for i := range n {
		arrive += dur(0, 700*ms)
		op := Op{Client: i, Kind: KindAcquire, Lock: "q", TTL: ttl, Outcome: OK, Token: fmt.Sprint("t", i), Fair: true, LockDelay: delay}
		switch {
		case kind == "semaphore":
			op.Limit = 3
		case kind == "shared" && rng.IntN(3) > 0:
			op.Mode = ModeShared
		case kind == "shared":
			op.Mode = ModeExclusive
		}
		received := arrive - dur(0, 2*ms) // the handler started; it queues the wait at arrive
		op.Call = received - lat()

		// Grants go in queue order, the first moment the holders allow.
		g := max(arrive, last)
		for !grantable(op, g) {
			next := forever
			for _, h := range holders {
				for _, t := range []time.Duration{h.end, h.closed} {
					if t > g {
						next = min(next, t)
					}
				}
			}
			g = next
		}
		last = g
		fence++
		answered := g + dur(0, 2*ms)
		op.Return = answered + lat()
		op.Fence, op.Waited = fence, answered-received
		op.Validity = max(ttl-margin-(answered-g), 0)
		if g > arrive {
			confirmed := min(arrive+dur(0, 2*ms), g)
			op.Queued = (answered - confirmed).Truncate(ms)
		}
		ops = append(ops, op)

		h := holder{exclusive: op.exclusive(), end: g + ttl, closed: g + ttl + delay}
		if rng.IntN(10) > 0 { // else the holder dies
			rel := Op{Client: i, Kind: KindRelease, Lock: "q", Token: op.Token, Outcome: Refused}
			rel.Call = op.Return + dur(0, 250*ms)
			at := rel.Call + lat()
			rel.Return = at + lat()
			if at < h.end {
				rel.Outcome, h.end, h.closed = OK, at, at
			}
			ops = append(ops, rel)
		}
		holders = append(holders, h)
	}
	return ops
}

// TestQueueSimulation: histories of a correct fair queue with lock-delays,
// under uneven latency, pass every checker; the same history with two
// grants' fences swapped fails the fair one.
func TestQueueSimulation(t *testing.T) {
	for _, kind := range []string{"exclusive", "shared", "semaphore"} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("%s/%d", kind, seed), func(t *testing.T) {
				ops := simulateQueue(seed, 150, kind)
				r := Run(ops, nil, nil, Config{Model: testModel, Timeout: time.Minute})
				if !r.OK() {
					t.Fatalf("a valid history failed:\n%s", r)
				}

				// Some calls were queued behind later ones, and some leases
				// expired, closing the name.
				var overtaken, expired bool
				released := make(map[string]bool)
				for i, a := range ops {
					for _, b := range ops[i+1:] {
						if a.Kind == KindAcquire && b.Kind == KindAcquire && b.Call < a.Call {
							overtaken = true
						}
					}
					if a.Kind == KindRelease && a.Outcome == OK {
						released[a.Token] = true
					}
				}
				for _, a := range ops {
					expired = expired || (a.Kind == KindAcquire && !released[a.Token])
				}
				if !overtaken || !expired {
					t.Errorf("the simulation had overtaken calls %v, expired leases %v; want both", overtaken, expired)
				}

				// Swap the fences of a waiter and an acquire sent after it
				// was surely queued.
				for i, a := range ops {
					if a.Queued == 0 {
						continue
					}
					by := a.Return - time.Duration(float64(a.Queued)*(1-testModel.Rho))
					for j, b := range ops {
						if b.Kind == KindAcquire && b.Call > by && b.Fence > a.Fence {
							bad := slices.Clone(ops)
							bad[i].Fence, bad[j].Fence = b.Fence, a.Fence
							if got := FairOrder(bad, testModel.Rho); len(got) == 0 {
								t.Errorf("ops #%d and #%d swapped: FairOrder found nothing", i, j)
							}
							return
						}
					}
				}
				t.Error("the simulation queued no waiter ahead of a later call")
			})
		}
	}
}
