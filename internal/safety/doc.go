// Package safety is the fault-injection harness of the safety suite. A
// scenario starts real processes on loopback — the Redis topology it names
// (Mode: one node, three independent masters, a Redis Cluster, or a
// Sentinel-managed master with replicas), two lockd instances, an
// in-process toxiproxy with one proxy per (instance, node) link (not in
// front of a cluster or sentinels, which hand out their nodes' own
// addresses), a fenced store, seven in-process clients and one client in
// its own process — runs traffic (plain exclusive locks, or the
// scenario's Workload of semaphores, shared locks, fair waits and
// lock-delays), injects one fault (kill -9 or SIGSTOP a node, toxics on a
// node's links, kill -9 an instance, pause a lock holder, delete lock keys
// behind the service's back, kill -9 a master and leave the failover to a
// replica), and hands the recorded history to the checkers of
// internal/safety/check. It then checks liveness (every lock
// can be taken again, no key is left behind) and hygiene (Redis connections
// back to baseline; goroutines in TestMain).
//
// Processes are started and stopped by pid, never by name. Times are taken
// on CLOCK_MONOTONIC (Clock) so that the client process's times line up with
// the harness's.
//
// go test runs the short subset (make test); -safety.full or SAFETY_FULL=1
// runs every scenario (make safety) and prints the summary table, also
// written to $SAFETY_REPORT when set.
package safety
