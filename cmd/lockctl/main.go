// Command lockctl runs a command under a cluster-wide lock held in lockd,
// and takes, renews, releases and lists locks from scripts. It is built on
// the client package; "lockctl --help" lists its commands and exit codes.
package main

import (
	"context"
	"os"
)

func main() {
	// No signal.NotifyContext here: "lockctl run" forwards SIGINT and
	// SIGTERM to its command, and the other commands may simply die of them.
	os.Exit(run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr))
}
