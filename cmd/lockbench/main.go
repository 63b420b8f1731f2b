// Command lockbench measures lockd against its Redis floor and against
// redsync used directly, on real redis-server and lockd processes that it
// starts on loopback and stops itself. `make bench` runs it and rewrites
// doc/BENCHMARKS.md; `make bench-smoke` only checks that it works.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "lockbench:", err)
		os.Exit(1)
	}
}
