package check

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"
)

// FairOrder checks that fair waits are granted in the order they began, for
// waits on the same name that overlapped ("fair-order"). Only OK acquires
// count: a waiter that gave up, was refused or never heard back is out of
// the queue and owed nothing.
//
// A violation needs two things to be certain, and the client's times alone
// give neither:
//
//   - Which wait began first. A wait begins when lockd queues it in Redis,
//     somewhere in [Call, Return]: a request held up on its way (latency,
//     a paused lockd or Redis) may be queued after one sent later, and
//     then it rightly comes second. The upper bound comes from the answer
//     instead: lockd confirmed the wait in the queue Queued before it built
//     the answer, so with clocks that differ in rate by at most rho, A was
//     queued by A.Return − A.Queued·(1−rho). B was queued no earlier than
//     B.Call.
//   - Which grant came first. The acquire's Return is only an upper bound
//     of its grant, and Call, the only lower bound, is before the wait
//     began. The fence is the server's own witness: it rises with every
//     grant of the name (Fences checks that against real time).
//
// So the rule: for OK acquires A and B of one name, where A waited fairly
// (Fair, Queued > 0),
//
//	A.Return − A.Queued·(1−rho) < B.Call  and  B.Fence < A.Fence
//
// is a violation: A sat in the queue before B's request was even sent, and
// B was granted first. A's wait still ran when B's began, since A's grant
// came after B's. B need not be fair itself: while a fair queue exists,
// every acquire of the name joins it or fails at once, so none may jump
// it. This holds for locks (shared and exclusive) and semaphores alike,
// provided that lockd counts Queued from the latest time it queued the
// wait (a waiter dropped for a lapsed liveness lease and queued again
// begins again), and that waiters granted in one step get their fences in
// queue order.
func FairOrder(ops []Op, rho float64) []Violation {
	type waiter struct {
		at int
		op Op
		by time.Duration // queued by then for certain
	}
	waiters := make(map[string][]waiter)
	granted := make(map[string][]int) // per name, OK acquires by Call
	for i, op := range ops {
		if op.Kind != KindAcquire || op.Outcome != OK {
			continue
		}
		granted[op.Lock] = append(granted[op.Lock], i)
		if op.Fair && op.Queued > 0 {
			by := op.Return - time.Duration(float64(op.Queued)*(1-rho))
			waiters[op.Lock] = append(waiters[op.Lock], waiter{at: i, op: op, by: by})
		}
	}
	var out []Violation
	for _, lock := range slices.Sorted(maps.Keys(waiters)) {
		bs := granted[lock]
		slices.SortStableFunc(bs, func(a, b int) int { return cmp.Compare(ops[a].Call, ops[b].Call) })
		for _, a := range waiters[lock] {
			// Only acquires sent after a was surely queued can be behind it.
			first, _ := slices.BinarySearchFunc(bs, a.by, func(i int, by time.Duration) int {
				if ops[i].Call <= by {
					return -1
				}
				return 1
			})
			for _, j := range bs[first:] {
				if b := ops[j]; b.Fence < a.op.Fence {
					out = append(out, Violation{Checker: CheckerFair, Kind: "fair-order", Lock: lock,
						Detail: fmt.Sprintf("%s was queued by %v, before %s was sent, but got the higher fence",
							describeOp(a.at, a.op), a.by, describeOp(j, b))})
				}
			}
		}
	}
	return out
}
