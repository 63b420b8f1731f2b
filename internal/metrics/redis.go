package metrics

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// RedisHook returns a go-redis hook for the client of Redis node node (its
// index in the configuration, or a cluster node's host:port, so the label
// stays bounded). Add it with
// client.AddHook. It observes the duration of every command and pipeline in
// lockd_redis_command_duration_seconds and counts failures in
// lockd_redis_errors_total; see failed for what counts.
func (m *Metrics) RedisHook(node string) redis.Hook {
	label := node
	// Resolving the children once keeps the label lookup off every command,
	// and creates the node's error series at 0 before its first failure.
	return redisHook{
		duration: m.redisDuration.WithLabelValues(label),
		errors:   m.redisErrors.WithLabelValues(label),
	}
}

type redisHook struct {
	duration prometheus.Observer
	errors   prometheus.Counter
}

// DialHook counts failed dials, each attempt on its own: go-redis tries up
// to Options.DialerRetries times (5 by default) before a command gives up,
// and every refused attempt is a node that did not answer. Dial time is not
// a command's, so it is not observed; a command that had to dial includes it
// in its own duration.
func (h redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if failed(err) {
			h.errors.Inc()
		}
		return conn, err
	}
}

// ProcessHook times one command and counts it when it fails, unless the
// failure was a dial that DialHook has already counted.
func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.duration.Observe(time.Since(start).Seconds())
		if counted(cmd, err) {
			h.errors.Inc()
		}
		return err
	}
}

// ProcessPipelineHook times a pipeline (or MULTI/EXEC) as one round trip
// and counts it once if it failed. The commands are looked at one by one,
// because the pipeline's own error is only the first command's, which may
// be a harmless redis.Nil in front of a real failure; the pipeline's error
// decides only when go-redis stamped it on none of them.
func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.duration.Observe(time.Since(start).Seconds())
		stamped := false
		bad := false
		for _, cmd := range cmds {
			cerr := cmd.Err()
			stamped = stamped || cerr != nil
			bad = bad || counted(cmd, cerr)
		}
		if bad || (!stamped && failed(err) && !isDial(err)) {
			h.errors.Inc()
		}
		return err
	}
}

// counted reports whether cmd's err goes into the error counter: a failure
// that neither DialHook has counted already nor go-redis shrugs off while
// setting up a connection.
func counted(cmd redis.Cmder, err error) bool {
	return failed(err) && !isDial(err) && !handshake(cmd)
}

// handshake reports whether cmd is one of the commands go-redis sends on a
// new connection and whose failure it tolerates: HELLO (older servers speak
// only RESP2) and CLIENT SETINFO or MAINT_NOTIFICATIONS (unknown before Redis
// 7.2 and 8). They pass through the hooks, and counting their refusals would
// raise the error rate with every new connection to an older server. A
// handshake failure go-redis does not tolerate, such as a wrong password,
// fails the command that needed the connection, and that one is counted.
// lockd sends no CLIENT commands of its own.
func handshake(cmd redis.Cmder) bool {
	name := cmd.Name()
	return name == "hello" || name == "client"
}

// failed reports whether err is a failure of Redis or of the way to it.
// Not failures:
//   - redis.Nil: a missing key is an answer (a GET of a free lock).
//   - context.Canceled: the caller gave up, typically a client that went
//     away or a fan-out that already had its quorum; it says nothing about
//     the node, so it is not counted at all. context.DeadlineExceeded is
//     counted: lockd bounds each node call with a deadline, and a node that
//     misses it is exactly what this counter is for.
//   - NOSCRIPT: the script cache was empty (a restarted node); the client
//     loads the script with EVAL and carries on.
func failed(err error) bool {
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, context.Canceled):
		return false
	case redis.HasErrorPrefix(err, "NOSCRIPT"):
		return false
	}
	return true
}

// isDial reports whether err is a failed dial, which DialHook counts.
func isDial(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
