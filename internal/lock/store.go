package lock

import (
	"context"
	"embed"
	"fmt"
	"time"

	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	"github.com/redis/go-redis/v9"
)

// The /v1 scripts: each does one whole operation in one EVALSHA. They share
// common.lua, which is put in front of each when it is loaded.
//
//go:embed scripts/*.lua
var scriptFiles embed.FS

// scriptSet is the /v1 scripts of one mode, and their texts for SCRIPT
// LOAD. (Pipelining Script.Load would not do: it records the reply as the
// script's hash before the pipeline has run.)
type scriptSet struct {
	acquire, raise, extend, release, inspect, expire, queue *redis.Script
	sources                                                 []string
}

// clusterFlags heads every script in cluster mode: the script may touch,
// besides the keys of the lock's slot, the events stream and released
// channel of its shard (see common.lua), which live in other slots of the
// same node. The flag needs Redis 7; it is left out elsewhere, where Redis
// 6 is enough.
const clusterFlags = "#!lua flags=allow-cross-slot-keys\n"

func newScriptSet(head string) *scriptSet {
	set := &scriptSet{}
	load := func(name string) *redis.Script {
		src := head
		for _, f := range []string{"common", "rich", name} {
			b, err := scriptFiles.ReadFile("scripts/" + f + ".lua")
			if err != nil {
				panic(err) // embedded at build time: cannot be missing
			}
			src += string(b) + "\n"
		}
		set.sources = append(set.sources, src)
		return redis.NewScript(src)
	}
	set.acquire, set.raise, set.extend = load("acquire"), load("raise"), load("extend")
	set.release, set.inspect, set.expire = load("release"), load("inspect"), load("expire")
	set.queue = load("queue")
	return set
}

var (
	plainScripts   = newScriptSet("")
	clusterScripts = newScriptSet(clusterFlags)
)

// Keys beside a lock's "lock:NAME". Their prefixes differ from "lock:" before
// the name starts, so no lock name, however it is spelt, can reach them.
const (
	// fenceCounterPrefix starts the fence counter of a Redis Cluster slot:
	// every lock in the slot takes its fences from it, so the counters are
	// bounded (at most 16,384) and a released lock leaves nothing behind.
	fenceCounterPrefix = "lockd:fence:"
	// The three-key layout of earlier releases: a name's own counter and grant record. lockd
	// honours and retires them, and writes them while LegacyKeys is set.
	metaPrefix  = "lockmeta:"
	fencePrefix = "lockfence:"
)

// keys are the keys a /v1 script is given for name (see common.lua).
func (m *Manager) keys(name string) []string {
	if m.cluster != nil {
		// Only keys of the lock's slot: no layout of earlier releases
		// exists on a cluster, and the events stream is the shard's
		// (ARGV[9]).
		return []string{KeyPrefix + name, sharedKey(fenceCounterPrefix, name)}
	}
	return []string{KeyPrefix + name, sharedKey(fenceCounterPrefix, name), EventsStream, fencePrefix + name, metaPrefix + name}
}

// Mode letters for the scripts' ARGV[5].
const (
	modeContended = "c"
	modeKeepOld   = "k"
	modeSilent    = "n"
	modeWaiter    = "w"
	modeQueue     = "q"
	modeLocal     = "l"
	modeQuorum    = "s"
	modeFair      = "f"
	modeLeave     = "x"
)

// argv builds a script's arguments (see common.lua). The event fields ride
// along, so the script writes the event in the same step as the change.
func (m *Manager) argv(name, token string, n int64, owner, mode string) []any {
	if m.keepOld {
		mode += modeKeepOld
	}
	if len(m.nodes) > 1 {
		mode += modeQuorum
	}
	// ARGV[4] is read no more (grants take Redis's clock); its 0 keeps
	// the later arguments in their places.
	if m.cluster != nil {
		return []any{token, n, owner, 0, mode, m.replica, "", "", m.cluster.homes(name)}
	}
	return []any{token, n, owner, 0, mode, m.replica, ReleasedChannel}
}

// argvSpec is argv with ARGV[10], the request of a richer grant or a wait
// (see rich.lua).
func (m *Manager) argvSpec(name, token string, n int64, owner, mode string, s spec) []any {
	a := m.argv(name, token, n, owner, mode)
	if len(a) == 7 {
		a = append(a, "", "")
	}
	return append(a, s.String())
}

// eventTime is RFC 3339 in UTC with milliseconds, as events carry it.
const eventTime = "2006-01-02T15:04:05.000Z07:00"

// scriptsOnConnect loads every script on a new connection, before anything
// else uses it, so that EVALSHA finds them from the first call: after a
// Redis restart the old connections are gone and the new ones reload.
func scriptsOnConnect(set *scriptSet, extra []*redsyncredis.Script) func(context.Context, *redis.Conn) error {
	return func(ctx context.Context, cn *redis.Conn) error {
		_, err := cn.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, src := range set.sources {
				p.ScriptLoad(ctx, src)
			}
			for _, s := range extra {
				p.ScriptLoad(ctx, s.Src)
			}
			return nil
		})
		return err
	}
}

// scriptReply is a script's array reply, read as integers and strings.
type scriptReply []any

func (r scriptReply) int(i int) int64 {
	if i < len(r) {
		v, _ := r[i].(int64)
		return v
	}
	return 0
}

func (r scriptReply) str(i int) string {
	if i < len(r) {
		v, _ := r[i].(string)
		return v
	}
	return ""
}

// evalOn runs s on one node with EVALSHA (EVAL only if the script cache was
// flushed behind lockd's back).
func evalOn(ctx context.Context, n *node, s *redis.Script, keys []string, argv []any) (scriptReply, error) {
	res, err := s.Run(ctx, n.client, keys, argv...).Slice()
	if err != nil {
		return nil, err
	}
	return scriptReply(res), nil
}

// evalAcked runs s on n like evalOn, followed on the same connection by
// WAIT for m.minRepl replicas, and returns how many acknowledged. The two
// go in one pipeline on one node's client: WAIT counts the writes of its
// own connection, so sent anywhere else (a cluster pipeline routes a
// keyless command to any master) it would vouch for nothing. In cluster
// mode the client is that of the master of name's slot; when the slot
// moved meanwhile (MOVED or ASK), nothing ran, and the call is tried again
// on the master go-redis finds next.
func (m *Manager) evalAcked(ctx context.Context, n *node, s *redis.Script, name string, keys []string, argv []any) (scriptReply, int64, error) {
	for try := 0; ; try++ {
		var c *redis.Client
		switch cl := n.client.(type) {
		case *redis.Client:
			c = cl
		case *redis.ClusterClient:
			var err error
			if c, err = cl.MasterForKey(ctx, KeyPrefix+name); err != nil {
				return nil, 0, err
			}
		}
		var eval *redis.Cmd
		var wait *redis.IntCmd
		p := c.Pipeline()
		eval = s.EvalSha(ctx, p, keys, argv...)
		wait = p.(*redis.Pipeline).Wait(ctx, m.minRepl, m.replWait)
		_, err := p.Exec(ctx)
		if err != nil && try < clusterRedirects {
			switch {
			case redis.HasErrorPrefix(err, "NOSCRIPT"):
				// The script cache was flushed behind lockd's back.
				if err = s.Load(ctx, c).Err(); err == nil {
					continue
				}
			case redis.HasErrorPrefix(err, "MOVED"), redis.HasErrorPrefix(err, "ASK"), redis.HasErrorPrefix(err, "TRYAGAIN"):
				if cl, ok := n.client.(*redis.ClusterClient); ok {
					cl.ReloadState(ctx)
					if sleepCtx(ctx, 10*time.Millisecond) == nil {
						continue
					}
				}
			}
		}
		if err != nil {
			return nil, 0, err
		}
		res, err := eval.Slice()
		return scriptReply(res), wait.Val(), err
	}
}

// sleepCtx sleeps for d, or until ctx ends, returning its error.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// unacked is the error of a change fewer than m.minRepl replicas
// acknowledged in time.
func (m *Manager) unacked(step string, acked int64) error {
	return unavailable(step, fmt.Errorf("%d of %d replicas acknowledged it within %v", acked, m.minRepl, m.replWait))
}

// unavailable wraps a Redis failure of step.
func unavailable(step string, err error) error {
	return &kindError{ErrUnavailable, fmt.Errorf("lock: %s: %w", step, err)}
}
