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
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
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

// FreePort returns a free loopback port below the kernel's ephemeral range,
// never one it already returned in this process: a node restarted on its
// port leaves the port free for a moment, and a caller running beside it
// must not take it then.
//
// Not a port the kernel picks (":0"): those come from the ephemeral range,
// where every outgoing connection on the machine takes its local port, so
// between our check and the server's bind a client socket of a test running
// beside it could take the port (CI once saw a cluster bus port taken so).
// Another process may still bind the port before it is used; StartRedis
// notices when the server answering is not the one started, and callers
// that chose the port retry on ErrPortTaken.
func FreePort() (int, error) {
	lo, hi := portRange()
	for range 1000 {
		port := lo + rand.IntN(hi-lo)
		given.Lock()
		seen := given.ports[port]
		given.Unlock()
		if seen {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken by a listener
		}
		_ = l.Close()
		given.Lock()
		given.ports[port] = true
		given.Unlock()
		return port, nil
	}
	return 0, fmt.Errorf("procs: no free port in %d-%d", lo, hi-1)
}

// portRange is where FreePort looks: from 10000 up to the start of the
// kernel's ephemeral range (net.ipv4.ip_local_port_range), 32768 when that
// cannot be read.
func portRange() (lo, hi int) {
	lo, hi = 10000, 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	if f := strings.Fields(string(b)); len(f) == 2 {
		if start, err := strconv.Atoi(f[0]); err == nil && start > lo+1000 {
			hi = start
		}
	}
	return lo, hi
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
