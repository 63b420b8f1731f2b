// Command lockbench measures lockd against its Redis floor, against redsync
// used directly, and against two peers run as their own processes: a naive
// Gin + redsync service (./naive) and, where the etcd binary is installed,
// etcd's lock service through its JSON gateway. It starts real
// redis-server, lockd and peer processes on loopback and stops them itself,
// and counts Redis round trips from outside the services with a TCP proxy
// (proxy.go). `make bench` runs it and rewrites doc/BENCHMARKS.md; `make
// bench-smoke` only checks that it works, with or without etcd.
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
