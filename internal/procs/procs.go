// Package procs starts the processes the repository runs on one machine,
// redis-server nodes and lockd replicas, each on a free loopback port, and
// stops them by process id. It also starts whole Redis topologies: a Redis
// Cluster (StartCluster), and a master with replicas watched by sentinels
// (StartSentinel), each returned only once it could survive losing its
// master. lockdemo, lockbench, the safety harness and
// redistest (its thin testing wrapper) all start them here, so a fix to how
// a server is started or known to be ready reaches every one of them.
//
// Every process runs in its own process group: a terminal's Ctrl-C reaches
// only the program that started it, which then stops it in its own order.
// Nothing here imports testing; it is linked into shipped binaries.
package procs

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec says how to start one process.
type Spec struct {
	Name string // for errors, such as "lockd-1"
	Path string // the binary, looked up on PATH when it has no slash
	Args []string
	Env  []string // nil: this process's environment
	Dir  string   // "": this process's working directory
	// Stdin, Stdout and Stderr are as for exec.Cmd; nil discards.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// LogFile, when set, receives stdout and stderr where Stdout and
	// Stderr are nil: it is created or appended to, so a restarted
	// process continues the log of the one before.
	LogFile string
}

// Proc is one running process.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts the process s describes. It returns the error of opening
// LogFile or of starting the binary.
func Start(s Spec) (*Proc, error) {
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Env, cmd.Dir = s.Env, s.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.Stdin, s.Stdout, s.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.LogFile != "" {
		logf, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		// The child has its own copy of the descriptor once started.
		defer logf.Close()
		if cmd.Stdout == nil {
			cmd.Stdout = logf
		}
		if cmd.Stderr == nil {
			cmd.Stderr = logf
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p := &Proc{Name: s.Name, cmd: cmd, done: make(chan struct{})}
	// Wait also waits for the copying of non-file Stdout and Stderr, so
	// everything the process wrote is out once Done is closed.
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// exited reports whether the process has exited and been reaped.
func (p *Proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process, such as SIGSTOP and SIGCONT to pause
// and resume it. It returns os.ErrProcessDone once the process has exited.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL and waits for the exit. It is safe to call more than
// once, and on a paused process (SIGKILL needs no SIGCONT).
func (p *Proc) Kill() {
	if p.exited() {
		return
	}
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop asks the process to stop with SIGTERM (after a SIGCONT, in case it
// is paused: a stopped process cannot act on SIGTERM) and kills it when it
// is still there after grace, for a lockd draining its waiters, say.
func (p *Proc) Stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.Signal(syscall.SIGCONT)
	_ = p.Signal(syscall.SIGTERM)
	p.WaitOrKill(grace)
}

// WaitOrKill waits up to grace for the process to exit, then kills it. It
// sends nothing first: a caller that signalled several processes lets them
// stop side by side, and a second SIGTERM is never sent.
func (p *Proc) WaitOrKill(grace time.Duration) {
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
}

// FreePort asks the kernel for a free loopback port, never one it already
// returned in this process: a node restarted on its port leaves the port
// free for a moment, and a caller running beside it must not take it then.
// Another process may still take it before it is used; StartRedis notices
// when the server answering is not the one started.
func FreePort() (int, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		given.Lock()
		seen := given.ports[port]
		given.ports[port] = true
		given.Unlock()
		if !seen {
			return port, nil
		}
	}
}

// given is every port FreePort returned in this process.
var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Tail returns the last n lines of the file at path, joined by sep, for
// error messages and failure reports; the read error's text when it cannot
// read it.
func Tail(path string, n int, sep string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ""
		}
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, sep)
}
