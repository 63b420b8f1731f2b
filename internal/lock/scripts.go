package lock

import (
	"context"
	"sync"
	"time"

	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
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
