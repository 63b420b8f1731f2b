package safety

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
	"github.com/go-distributed-lock/go-distributed-lock/internal/safety/check"
)

// ClientEnv carries a ClientConfig (JSON) to a client process. Its presence
// is what makes TestSafetyClientProcess act as a client.
const ClientEnv = "SAFETY_CLIENT_CONFIG"

// Lines a client process writes on stdout; anything else (the test
// framework's own output) is ignored.
const (
	opLine   = "SAFETY-OP "   // followed by a check.Op as JSON
	holdLine = "SAFETY-HOLD " // followed by the lock name and the fence
)

// ServeClientProcess is the body of a client process: it runs one client
// until stdin closes, then finishes its cycle and returns. Ops go to out as
// JSON lines; times are on the parent's clock, since both read
// CLOCK_MONOTONIC and the parent's base came in the config.
func ServeClientProcess(cfg ClientConfig, pace time.Duration, stdin io.Reader, out io.Writer) {
	var mu sync.Mutex
	emit := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(out, s)
	}
	c := NewClient(cfg, func(op check.Op) {
		b, _ := json.Marshal(op)
		emit(opLine + string(b))
	})
	defer c.Close()
	c.held = func(lock string, fence int64) { emit(holdLine + lock + " " + strconv.FormatInt(fence, 10)) }

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()
	tick := time.NewTicker(pace)
	defer tick.Stop()
	c.Run(ctx, tick.C)
}

// clientProcess is the parent's handle on a client process.
type clientProcess struct {
	p     *procs.Proc
	stdin io.WriteCloser
	done  chan struct{} // closed when stdout is drained and the process reaped

	mu    sync.Mutex
	ops   []check.Op
	holds chan hold
}

// hold is a careless client's announcement that it holds lock with fence
// and is about to write.
type hold struct {
	lock  string
	fence int64
}

// startClientProcess re-runs the test binary as a client. stderr (the test
// framework's chatter and any panic) goes to logPath.
func startClientProcess(cfg ClientConfig, pace time.Duration, logPath string) (*clientProcess, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	// Pipes of our own: closing stdinW is how the client is told to stop
	// (and what lets the process be reaped: until then exec's copying of
	// stdin goes on), and stdoutW is closed once it is reaped, which ends
	// read.
	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	p, err := procs.Start(procs.Spec{
		Name: "client process",
		Path: os.Args[0],
		Args: []string{"-test.run=^TestSafetyClientProcess$", "-test.count=1", "-test.v=false"},
		Env:  append(os.Environ(), ClientEnv+"="+string(b), "SAFETY_CLIENT_PACE="+pace.String()),
		// The test framework's own stdout lines are ignored by read.
		Stdin: stdinR, Stdout: stdoutW, LogFile: logPath,
	})
	if err != nil {
		return nil, err
	}
	cp := &clientProcess{p: p, stdin: stdinW, done: make(chan struct{}), holds: make(chan hold, 100)}
	go func() {
		<-p.Done()
		_ = stdoutW.Close()
	}()
	go func() {
		cp.read(stdoutR)
		// A line too long for read must not block the process's output.
		_, _ = io.Copy(io.Discard, stdoutR)
		close(cp.done)
	}()
	return cp, nil
}

func (p *clientProcess) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if s, ok := strings.CutPrefix(line, opLine); ok {
			var op check.Op
			if json.Unmarshal([]byte(s), &op) == nil {
				p.mu.Lock()
				p.ops = append(p.ops, op)
				p.mu.Unlock()
			}
			continue
		}
		if s, ok := strings.CutPrefix(line, holdLine); ok {
			lock, fence, _ := strings.Cut(s, " ")
			f, _ := strconv.ParseInt(fence, 10, 64)
			select {
			case p.holds <- hold{lock: lock, fence: f}:
			default: // nobody is waiting for one: drop it
			}
		}
	}
}

// signal sends sig to the client process.
func (p *clientProcess) signal(sig os.Signal) error { return p.p.Signal(sig) }

// stop closes stdin, lets the client finish its cycle, and kills it if it
// takes longer than limit. It returns the ops the process reported.
func (p *clientProcess) stop(limit time.Duration) []check.Op {
	_ = p.signal(syscall.SIGCONT)
	_ = p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(limit):
		p.p.Kill()
		<-p.done
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]check.Op(nil), p.ops...)
}
