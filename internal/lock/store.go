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

// scriptSources are the /v1 scripts' texts, for SCRIPT LOAD. (Pipelining
// Script.Load would not do: it records the reply as the script's hash
// before the pipeline has run.)
var scriptSources []string

func loadScript(name string) *redis.Script {
	common, err := scriptFiles.ReadFile("scripts/common.lua")
	if err == nil {
		var body []byte
		body, err = scriptFiles.ReadFile("scripts/" + name + ".lua")
		common = append(append(common, '\n'), body...)
	}
	if err != nil {
		panic(err) // embedded at build time: cannot be missing
	}
	scriptSources = append(scriptSources, string(common))
	return redis.NewScript(string(common))
}

var (
	acquireScript = loadScript("acquire")
	raiseScript   = loadScript("raise")
	extendScript  = loadScript("extend")
	releaseScript = loadScript("release")
	inspectScript = loadScript("inspect")
	expireScript  = loadScript("expire")
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
)

// argv builds a script's arguments (see common.lua). The event fields ride
// along, so the script writes the event in the same step as the change.
func (m *Manager) argv(token string, n int64, owner, mode string) []any {
	if m.keepOld {
		mode += modeKeepOld
	}
	if len(m.nodes) > 1 {
		mode += modeQuorum
	}
	return []any{token, n, owner, time.Now().UnixMilli(), mode, m.replica, ReleasedChannel}
}

// eventTime is RFC 3339 in UTC with milliseconds, as events carry it.
const eventTime = "2006-01-02T15:04:05.000Z07:00"

// scriptsOnConnect loads every script on a new connection, before anything
// else uses it, so that EVALSHA finds them from the first call: after a
// Redis restart the old connections are gone and the new ones reload.
func scriptsOnConnect(extra []*redsyncredis.Script) func(context.Context, *redis.Conn) error {
	return func(ctx context.Context, cn *redis.Conn) error {
		_, err := cn.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, src := range scriptSources {
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

// unavailable wraps a Redis failure of step.
func unavailable(step string, err error) error {
	return &kindError{ErrUnavailable, fmt.Errorf("lock: %s: %w", step, err)}
}
