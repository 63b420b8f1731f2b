package check_test

import (
	"fmt"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/safety/check"
)

// Two clients both believe they hold "orders": the first lease, granted at
// 10ms for a second, still runs when the second is granted at 510ms.
func ExampleMutualExclusion() {
	ms := time.Millisecond
	ops := []check.Op{
		{Client: 1, Kind: check.KindAcquire, Lock: "orders", Call: 0, Return: 10 * ms, Outcome: check.OK,
			Token: "a", Fence: 1, TTL: time.Second, Validity: time.Second},
		{Client: 2, Kind: check.KindAcquire, Lock: "orders", Call: 500 * ms, Return: 510 * ms, Outcome: check.OK,
			Token: "b", Fence: 2, TTL: time.Second, Validity: time.Second},
	}
	for _, v := range check.MutualExclusion(ops, 0) {
		fmt.Println(v.Checker, v.Kind, v.Lock)
	}
	result, _ := check.Linearizable(ops, check.LeaseModelParams{Rho: 0.01, Eps: 10 * ms}, time.Second)
	fmt.Println("porcupine:", result)
	// Output:
	// mutual-exclusion overlap orders
	// porcupine: Illegal
}

// Client 1 waits fairly for "orders" from 0; lockd answers at 1000ms and
// says it had queued the wait 900ms before, so it was queued by 109ms
// (1000 − 900·0.99). Client 2 sends at 200ms, when the wait was surely
// queued, yet gets the lock first: its fence is lower.
func ExampleFairOrder() {
	ms := time.Millisecond
	ops := []check.Op{
		{Client: 1, Kind: check.KindAcquire, Lock: "orders", Call: 0, Return: 1000 * ms, Outcome: check.OK,
			Token: "a", Fence: 3, TTL: time.Second, Validity: time.Second, Fair: true, Queued: 900 * ms},
		{Client: 2, Kind: check.KindAcquire, Lock: "orders", Call: 200 * ms, Return: 500 * ms, Outcome: check.OK,
			Token: "b", Fence: 2, TTL: time.Second, Validity: time.Second, Fair: true, Queued: 250 * ms},
	}
	for _, v := range check.FairOrder(ops, 0.01) {
		fmt.Println(v.Checker, v.Kind, v.Lock)
	}
	// Output:
	// fair fair-order orders
}
