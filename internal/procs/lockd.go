package procs

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Lockd is one running lockd replica (or any server that takes its port
// from PORT, such as lockbench's naive service).
type Lockd struct {
	*Proc
	Port int
	URL  string // http://127.0.0.1:Port
}

// StartLockd starts s with PORT=port added to its environment (a free port
// when port is 0) and returns once the port accepts connections. Ready
// means listening, not /readyz: a replica whose Redis is down still
// listens, and callers that need Redis too wait for /readyz themselves. An
// s.Env of nil is this process's environment. It returns the error of
// starting it, or of a process that exits or does not listen within 15 s;
// the process is killed then.
func StartLockd(s Spec, port int) (*Lockd, error) {
	if port == 0 {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		port = p
	}
	if s.Name == "" {
		s.Name = "lockd"
	}
	if s.Env == nil {
		s.Env = os.Environ()
	}
	s.Env = append(s.Env[:len(s.Env):len(s.Env)], "PORT="+strconv.Itoa(port))
	p, err := Start(s)
	if err != nil {
		return nil, err
	}
	l := &Lockd{Proc: p, Port: port, URL: "http://127.0.0.1:" + strconv.Itoa(port)}
	if err := l.waitListening(15 * time.Second); err != nil {
		l.Kill()
		return nil, err
	}
	return l, nil
}

func (l *Lockd) waitListening(limit time.Duration) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Port))
	deadline := time.Now().Add(limit)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-l.Done():
			return fmt.Errorf("procs: %s exited at start", l.Name)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("procs: %s not listening on %s after %v: %w", l.Name, addr, limit, err)
		}
	}
}
