package lock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// EventsStream is the Redis stream every replica appends its lock events
// to. Its ids are shared by all replicas, which gives each lock's events one
// order, and let a reader resume where it left off.
const EventsStream = "lockd:events"

// eventsMaxLen caps EventsStream. MAXLEN ~ lets Redis trim whole macro
// nodes, which is much cheaper than an exact cap, so a little more may be
// kept.
const eventsMaxLen = 10000

// eventsTimeout bounds one XADD or non-blocking read: events are best
// effort and must not hold a request up for long.
const eventsTimeout = 500 * time.Millisecond

// StreamEvent is one entry of EventsStream: its id and the data a replica
// published, unchanged.
type StreamEvent struct {
	ID   string
	Data []byte
}

// PublishEvent appends data to EventsStream on every usable node (in
// quorum mode each node keeps its own stream, so no node is special) and
// returns the entry's id on the first of them. The /v1 operations write
// their events inside their scripts; this is for the demo's. It is never
// recorded in a CommandLog: it is lockd's bookkeeping, not the demo's
// trace. It returns ErrUnavailable when no node took it.
func (m *Manager) PublishEvent(ctx context.Context, data []byte) (string, error) {
	ctx = context.WithValue(ctx, commandLogKey{}, (*CommandLog)(nil))
	got, errs := fanOut(ctx, m, eventsTimeout, func(ctx context.Context, n *node) (string, error) {
		return n.client.XAdd(ctx, &redis.XAddArgs{
			Stream: EventsStream, MaxLen: eventsMaxLen, Approx: true, Values: []any{"data", data},
		}).Result()
	}, func([]reply[string]) bool { return false })
	if len(got) == 0 {
		return "", unavailable("publish event", errs)
	}
	slices.SortFunc(got, func(a, b reply[string]) int { return a.node - b.node })
	return got[0].val, nil
}

// LastEventID is the id of EventsStream's newest entry, or "0-0" when it is
// empty: where a reader that wants only new events starts. ("$" would not
// do for a loop of XREADs: entries added between two reads would be
// missed.) It returns ErrUnavailable.
func (m *Manager) LastEventID(ctx context.Context) (string, error) {
	n := m.listNode()
	if n == nil {
		return "", &kindError{ErrUnavailable, errNodeOut}
	}
	ctx, cancel := context.WithTimeout(ctx, eventsTimeout)
	defer cancel()
	msgs, err := n.client.XRevRangeN(ctx, EventsStream, "+", "-", 1).Result()
	if err != nil {
		return "", &kindError{ErrUnavailable, fmt.Errorf("lock: read events: %w", err)}
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// ValidEventID reports whether id has the form of a stream id, "ms-seq".
func ValidEventID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return ok && err1 == nil && err2 == nil
}

// ReadEvents returns up to count entries of EventsStream after lastID,
// oldest first, waiting up to block for the first one (block < 0: not at
// all). It returns no entries and no error when none came in time, and
// ErrInvalidArgument or ErrUnavailable. It reads over its own connections,
// so a blocked read never delays a lock call.
func (m *Manager) ReadEvents(ctx context.Context, lastID string, count int, block time.Duration) ([]StreamEvent, error) {
	if !ValidEventID(lastID) {
		return nil, invalid("event id %q is not a stream id such as 1700000000000-0", lastID)
	}
	n := m.listNode()
	if n == nil {
		return nil, &kindError{ErrUnavailable, errNodeOut}
	}
	args := &redis.XReadArgs{Streams: []string{EventsStream, lastID}, Count: int64(count), Block: -1}
	if block >= 0 {
		args.Block = max(block, time.Millisecond) // BLOCK 0 would wait forever
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, eventsTimeout)
		defer cancel()
	}
	streams, err := n.events.XRead(ctx, args).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &kindError{ErrUnavailable, fmt.Errorf("lock: read events: %w", err)}
	}
	var out []StreamEvent
	for _, s := range streams {
		for _, msg := range s.Messages {
			data, _ := msg.Values["data"].(string)
			out = append(out, StreamEvent{ID: msg.ID, Data: []byte(data)})
		}
	}
	return out, nil
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
