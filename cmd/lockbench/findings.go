package main

// Profile findings, printed under a scenario whose target the run missed.
// They come from `go test -run '^$' -bench AcquireRelease -cpu 16
// -cpuprofile cpu.out ./internal/httpapi` and `go tool pprof -top -cum`.
const cycleFinding = "The service itself, but no longer Redis. Each `/v1` operation is one Lua script, one " +
	"EVALSHA: a cycle makes 2 Redis round trips like the floor, with the fence, the grant record and the event " +
	"inside them. What is left is HTTP: of 5.51 s sampled by `go test -run '^$' -bench AcquireRelease -cpu 16 " +
	"-cpuprofile cpu.out ./internal/httpapi` (client and server in one process), net/http's `(*conn).serve` is " +
	"2.50 s cum, gin and lockd's middleware (request id, access log, CORS, error mapping) 1.66 s inside it, and " +
	"the client's `(*Client).Post` 0.60 s, while the whole Redis side (`onEvery` down to EVALSHA) is 0.78 s. The " +
	"floor sends no HTTP request at all; against it two HTTP requests per cycle on these two shared cores cost " +
	"more CPU than the Redis work, so the naive HTTP service, not the floor, is the fair yardstick."

// handoffFinding is printed when a hand-off target is missed; the verdicts
// above it say which.
const handoffFinding = "Each grant costs the winner's acquire and the holder's release, one round trip each. " +
	"The rest is waiters that lose: a release wakes the oldest waiter on every replica, they all try and one " +
	"wins, and a competitor that comes back asks once before it waits. The gap is the release's PUBLISH reaching " +
	"the waiter, one EVALSHA and the HTTP answer. Handing the lock to one queued waiter inside the release " +
	"script (the fair-waiting issue) would remove both the losing attempts and the PUBLISH hop. Where only the " +
	"speed-up over redsync is missed, the cause is the baseline: redsync's median gap falls as pollers are " +
	"added, paid for with uneven shares and Redis load that grows with the waiters."
