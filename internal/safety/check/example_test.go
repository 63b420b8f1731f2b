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
