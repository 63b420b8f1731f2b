package lock

// LockdACL is the least an ACL user needs for lockd: ACL SETUSER rules
// without the user name, "on" or a password, so an operator runs
// "ACL SETUSER lockd on >secret " + LockdACL and a test passes
// "lockd on >secret " + LockdACL in redistest.Options.Users. It starts from
// nothing (-@all, resetkeys, resetchannels) so that applying it to an
// existing user also takes away what that user had. It lives here, beside
// the scripts and commands it permits, so that a change to what this
// package sends is made next to it (redistest's TestLockdACL and
// cmd/lockd's TLS tests run lockd under it).
//
// HELLO and AUTH need no permission, and go-redis ignores a refused
// CLIENT SETINFO (Redis 7.2 and later), so neither is listed. CONFIG GET is
// left out on purpose: lockd works without it (it then cannot tell that a
// restarted node is durable, which only keeps that node out of quorums
// longer), while CONFIG GET would hand the user requirepass and masterauth.
const LockdACL = "resetkeys resetchannels -@all" +
	" +ping" + // readiness checks; go-redis pings a subscribed connection to check it
	" +select" + // REDIS_DB other than 0
	" +get +set +del +pexpire +pttl" + // redsync's SET NX PX, and its scripts' calls
	" +time" + // the acquire script floors fences at Redis's clock
	" +hset +hmget" + // the old layout's grant records (LEGACY_KEYS)
	" +evalsha +eval +script|load" + // scripts are loaded at start; EVAL is go-redis's fallback on NOSCRIPT and how locks are inspected
	" +scan" + // listing locks, and looking for lock keys on a restarted node
	" +info" + // a node's version and maxmemory-policy, at start and in /readyz; its run id and uptime, to notice a restart
	" +publish +subscribe" + // release wake-ups between replicas
	" +spublish +ssubscribe" + // cluster mode: wake-ups on each shard's own channel
	" +cluster|slots +cluster|nodes +command" + // cluster mode: the map of the slots (go-redis's and lockd's), a master's own slots while listing, COMMAND for go-redis's routing by key
	" +wait" + // REDIS_MIN_REPLICAS: replicas acknowledge each grant and extension
	" +xadd +xread +xrevrange" + // the lock events stream behind /v1/events
	" +xdel" + // quorum mode: a grant's event replaced when its fence was raised
	" ~lock:* ~lockd:fence:* ~lockd:node ~lockd:events ~lockd:events:*" + // locks, the slots' fence counters, the restart marker, the events (one stream per shard in a cluster)
	" ~lockmeta:* ~lockfence:*" + // grants and counters of the three-key layout of earlier releases, honoured and retired
	" &lockd:released &lockd:released:*" // the wake-up channel (one per shard in a cluster)
