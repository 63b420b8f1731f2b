// Package check holds the independent checkers of the safety suite: pure
// functions over a recorded history of lock operations (Op) and fenced-store
// writes (Write). It starts no processes and talks to no Redis, so every
// verdict can be reproduced from the JSON-lines histories of a failed run.
//
// The checkers overlap on purpose; each one would catch a different way of
// lying about a lock:
//
//   - MutualExclusion: two grants' client-side validity intervals overlap.
//   - Fences: fencing tokens do not increase with the grants, repeat, or
//     change on extend.
//   - Store: the fenced store accepted a write from a grant that had already
//     ended, or accepted a fence below one it had accepted before.
//   - Counter: a read-modify-write counter lost an increment.
//   - Linearizable: no order of the operations fits a lease-aware lock model
//     (porcupine), which also judges the ops whose outcome is unknown.
//
// Four more judge the richer grants (semaphores, shared locks, fair queues
// and lock-delays), each reporting only what is certainly wrong:
//
//   - Semaphores: more permits held at once than their limit.
//   - SharedExclusion: a shared holder beside an exclusive one.
//   - FairOrder: a fair wait surely queued before another was sent, granted
//     after it.
//   - LockDelays: a grant after an unreleased lease with a lock-delay
//     expired, before the delay surely ended.
//
// All times are offsets on one monotonic clock (see Op). The format is shared
// with the harness in internal/safety; this package imports nothing of it.
package check
