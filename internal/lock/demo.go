package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	"github.com/redis/go-redis/v9"
)

// redsyncScripts returns the Lua scripts redsync runs to release and to
// extend a lock. redsync keeps them unexported, and their SHA1 must match
// what it sends with EVALSHA, so rather than keep a copy that could drift we
// drive a throwaway mutex against a connection that only records them.
func redsyncScripts() []*redsyncredis.Script {
	rec := &recorder{}
	mu := redsync.New(rec).NewMutex("script-probe", redsync.WithValue("probe"))
	_, _ = mu.Unlock()
	_, _ = mu.Extend()
	return rec.scripts
}

// recorder is a redsync pool whose connections talk to nobody and only
// note the scripts they are asked to run.
type recorder struct {
	mu      sync.Mutex
	scripts []*redsyncredis.Script
}

func (r *recorder) Get(context.Context) (redsyncredis.Conn, error) { return recordingConn{r}, nil }

type recordingConn struct{ r *recorder }

func (c recordingConn) Eval(s *redsyncredis.Script, _ ...any) (any, error) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	c.r.scripts = append(c.r.scripts, s)
	return int64(1), nil
}

func (recordingConn) Get(string) (string, error)                        { return "", nil }
func (recordingConn) Set(string, string) (bool, error)                  { return false, nil }
func (recordingConn) SetNX(string, string, time.Duration) (bool, error) { return false, nil }
func (recordingConn) ScriptLoad(*redsyncredis.Script) error             { return nil }
func (recordingConn) PTTL(string) (time.Duration, error)                { return 0, nil }
func (recordingConn) Close() error                                      { return nil }

// Acquire takes the lock name for ttl, retrying with redsync's defaults (32
// tries, 50–250 ms apart, about 4–5 s in all) while another holder has it.
// While it tries it takes one of the replica's MaxWaiters slots, as a /v1
// wait does: its retries cost Redis as much as a waiter, or more. It returns
// ErrInvalidName, ErrTooManyWaiters when no slot is left, ErrLocked when
// the tries run out, ErrUnavailable when Redis cannot be reached, or ctx's
// error when ctx ends first.
func (m *Manager) Acquire(ctx context.Context, name string, ttl time.Duration) (Lease, error) {
	if err := ValidateName(name); err != nil {
		return Lease{}, err
	}
	if err := m.startWaiting(); err != nil {
		m.obs.Acquired(KindLock.label(), resultOf(err), 0)
		return Lease{}, err
	}
	defer m.endWaiting()
	start := time.Now()
	mu := m.rs.NewMutex(KeyPrefix+name, redsync.WithExpiry(ttl))
	err := mu.LockContext(ctx)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		// redsync answers ErrFailed for a done context too, so look first.
		err = ctx.Err()
	default:
		err = translate(err, ErrLocked)
	}
	m.obs.Acquired(KindLock.label(), resultOf(err), time.Since(start))
	switch {
	case err == nil:
		m.demoEvent(ctx, EventAcquired, name, ttl)
	case errors.Is(err, ErrLocked):
		m.demoEvent(ctx, EventContended, name, ttl)
	}
	if err != nil {
		return Lease{}, err
	}
	return Lease{Name: name, Token: mu.Value(), TTL: ttl, Until: mu.Until(), acquired: start}, nil
}

// demoEvent writes an event of a demo lock to the events stream, with the
// Redis commands its request sent so far (its CommandLog, if ctx has one).
// Failures are logged: events are a view, never a reason to fail.
func (m *Manager) demoEvent(ctx context.Context, typ, name string, ttl time.Duration) {
	var cmds []string
	if l, _ := ctx.Value(commandLogKey{}).(*CommandLog); l != nil {
		cmds = l.Lines()
	}
	b, err := json.Marshal(Event{Type: typ, Replica: m.replica, Name: name, TTLMS: ttl.Milliseconds(),
		Time: time.Now().UTC().Format(eventTime), Source: "demo", Commands: cmds})
	if err == nil {
		_, err = m.PublishEvent(context.WithoutCancel(ctx), name, b)
	}
	if err != nil {
		m.log.WarnContext(ctx, "lock event not published", "type", typ, "err", err)
	}
}

// Extend resets the lease's expiry to its TTL. It returns the lease with its
// new validity, ErrNotHolder when the key is gone or holds another token (or
// the validity ran out during the call), or ErrUnavailable. A fenced lease
// (from TryAcquire) is extended with Renew's script, a demo lease with
// redsync.
func (m *Manager) Extend(ctx context.Context, l Lease) (Lease, error) {
	if l.Fence > 0 {
		return m.Renew(ctx, l.Name, l.Token, l.TTL)
	}
	ctx, cancel := context.WithTimeout(ctx, nodeTimeout(l.TTL))
	defer cancel()
	mu := m.mutex(l)
	ok, err := mu.ExtendContext(ctx)
	if !ok {
		if err == nil {
			err = redsync.ErrExtendFailed
		}
		return l, translate(err, ErrNotHolder)
	}
	l.Until = mu.Until()
	return l, nil
}

// Release deletes the lock if it still holds the lease's token. It returns
// ErrNotHolder when the key is gone or holds another token, or
// ErrUnavailable. A fenced lease (from TryAcquire) is released as
// ReleaseToken does, a demo lease with redsync.
func (m *Manager) Release(ctx context.Context, l Lease) error {
	if l.Fence > 0 {
		return m.ReleaseToken(ctx, l.Name, l.Token)
	}
	rctx, cancel := context.WithTimeout(ctx, nodeTimeout(l.TTL))
	defer cancel()
	ok, err := m.mutex(l).UnlockContext(rctx)
	if !ok {
		if err == nil {
			err = redsync.ErrFailed
		}
		err = translate(err, ErrNotHolder)
	}
	var held time.Duration
	if !l.acquired.IsZero() {
		held = time.Since(l.acquired)
	}
	m.obs.Released(KindLock.label(), resultOf(err, "released"), held)
	switch {
	case err == nil:
		m.demoEvent(ctx, EventReleased, l.Name, l.TTL)
	case errors.Is(err, ErrNotHolder):
		m.demoEvent(ctx, EventLost, l.Name, l.TTL)
	}
	return err
}

// mutex rebuilds a redsync mutex for an existing lease: redsync mutexes are
// stateful, so each call gets its own.
func (m *Manager) mutex(l Lease) *redsync.Mutex {
	return m.rs.NewMutex(KeyPrefix+l.Name, redsync.WithExpiry(l.TTL), redsync.WithValue(l.Token))
}

// translate turns a redsync failure into one of our kinds. A Redis error
// anywhere in it means we could not learn the answer, which is not the same
// as being refused.
func translate(err error, refused error) error {
	var re *redsync.RedisError
	if errors.As(err, &re) {
		return &kindError{ErrUnavailable, err}
	}
	return &kindError{refused, err}
}

// CommandLog collects the Redis commands issued under one context, as
// RedisInsight's profiler shows them, with every token replaced by "…".
// The demo shows them per request.
type CommandLog struct {
	mu    sync.Mutex
	lines []string
}

// maxCommandLines bounds a CommandLog: a contended demo request sends 32
// SETs, each followed by redsync's clean-up release.
const maxCommandLines = 256

type commandLogKey struct{}

// WithCommandLog returns a context under which this package's Redis
// commands are recorded in the returned log.
func WithCommandLog(ctx context.Context) (context.Context, *CommandLog) {
	l := &CommandLog{}
	return context.WithValue(ctx, commandLogKey{}, l), l
}

// Lines returns the commands so far, oldest first. A command, or a pair of
// commands, repeated in a row (the demo's retries: SET, then the release
// redsync sends after a refused SET) is listed once, each line ending in
// " ×N".
func (l *CommandLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for i := 0; i < len(l.lines); {
		block, reps := 1, 1
		for _, k := range []int{1, 2} {
			n := 1
			for i+(n+1)*k <= len(l.lines) && slices.Equal(l.lines[i:i+k], l.lines[i+n*k:i+(n+1)*k]) {
				n++
			}
			if n > 1 {
				block, reps = k, n
				break
			}
		}
		for _, line := range l.lines[i : i+block] {
			if reps > 1 {
				line += " ×" + strconv.Itoa(reps)
			}
			out = append(out, line)
		}
		i += block * reps
	}
	return out
}

func (l *CommandLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < maxCommandLines {
		l.lines = append(l.lines, line)
	}
}

// profilerLine renders a command's arguments the way the profiler does,
// each one quoted. The tokens redsync sends are redacted by position: the
// value of SET, and the first argument after the keys of a script (both of
// redsync's scripts take the token as ARGV[1]).
func profilerLine(args []any) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = fmt.Sprint(a)
	}
	secret := -1
	if len(parts) > 0 {
		switch strings.ToLower(parts[0]) {
		case "set":
			secret = 2
		case "eval", "evalsha":
			if len(parts) > 2 {
				if keys, err := strconv.Atoi(parts[2]); err == nil {
					secret = 3 + keys
				}
			}
		}
	}
	for i, p := range parts {
		if i == secret {
			p = "…"
		}
		parts[i] = strconv.Quote(p)
	}
	return strings.Join(parts, " ")
}

// commandLogHook records commands whose context carries a CommandLog.
type commandLogHook struct{}

func (commandLogHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (commandLogHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if l, _ := ctx.Value(commandLogKey{}).(*CommandLog); l != nil {
			l.add(profilerLine(cmd.Args()))
		}
		return next(ctx, cmd)
	}
}

func (commandLogHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
