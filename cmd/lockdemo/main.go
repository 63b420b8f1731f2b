// Command lockdemo runs the docker compose topology as local processes, for
// machines without Docker: one redis-server with the .env password and
// database, and two lockd replicas on 8081 and 8082, their log lines
// prefixed "web-1 | " and "web-2 | " as compose does. Ctrl-C stops all
// three. `make demo` builds lockd and runs this.
//
// The compose overrides have their counterparts: -redis-nodes 3 runs
// quorum mode (docker-compose.redlock.yml), -redis-mode cluster a Redis
// Cluster of three masters with a replica each, in database 0
// (docker-compose.cluster.yml), and -redis-mode sentinel a master with two
// replicas and three sentinels (docker-compose.sentinel.yml). Ctrl-C then
// stops the replicas first, then the sentinels, then the Redis nodes.
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
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "lockdemo:", err)
		os.Exit(1)
	}
}
