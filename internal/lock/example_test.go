package lock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// exampleRedis starts a throwaway redis-server for an example.
func exampleRedis() (addr string, stop func()) {
	dir, _ := os.MkdirTemp("", "lock-example")
	srv, err := redistest.Run(dir, redistest.Options{})
	if err != nil {
		panic(err)
	}
	return srv.Addr, func() { srv.Stop(); _ = os.RemoveAll(dir) }
}

func ExampleManager_Acquire() {
	addr, stop := exampleRedis()
	defer stop()
	locks := lock.New(lock.Config{Nodes: []*redis.Options{{Addr: addr}}})
	defer locks.Close()

	ctx := context.Background()
	lease, err := locks.Acquire(ctx, "nightly-report", 30*time.Second)
	if err != nil {
		fmt.Println("not acquired:", err)
		return
	}
	fmt.Println("holding", lease.Name)

	// The token proves ownership: anything else is refused.
	forged := lease
	forged.Token = "guess"
	fmt.Println("forged release refused:", errors.Is(locks.Release(ctx, forged), lock.ErrNotHolder))

	fmt.Println("released:", locks.Release(ctx, lease) == nil)
	// Output:
	// holding nightly-report
	// forged release refused: true
	// released: true
}

func ExampleManager_Hold() {
	addr, stop := exampleRedis()
	defer stop()
	locks := lock.New(lock.Config{Nodes: []*redis.Options{{Addr: addr}}})
	defer locks.Close()

	ctx := context.Background()
	lease, err := locks.Acquire(ctx, "migration", time.Second)
	if err != nil {
		panic(err)
	}
	// The work outlasts the 1s expiry; Hold extends the lease meanwhile and
	// would cancel ctx if the lease were lost.
	lease, err = locks.Hold(ctx, lease, func(ctx context.Context) error {
		select {
		case <-time.After(1500 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	fmt.Println("work finished:", err == nil)
	fmt.Println("still ours to release:", locks.Release(ctx, lease) == nil)
	// Output:
	// work finished: true
	// still ours to release: true
}
