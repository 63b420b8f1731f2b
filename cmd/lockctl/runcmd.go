package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/client"
)

// runArgs are what "lockctl run" was asked to do.
type runArgs struct {
	name    string
	argv    []string // COMMAND and its arguments
	wait    waitFlags
	opts    client.AcquireOptions
	maxHold time.Duration
	grace   time.Duration // from SIGTERM to SIGKILL
}

// runCmd is "lockctl run": the command runs only while the lock is held.
func runCmd(ctx context.Context, e *env, args []string) int {
	r, code := e.parseRun(args)
	if code >= 0 {
		return code
	}
	c, err := e.client()
	if err != nil {
		return e.usageError("%v", err)
	}

	// From here on SIGINT and SIGTERM are ours to handle: while waiting
	// they give up the wait, while COMMAND runs they are passed on.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	lease, code := e.acquireInterruptibly(ctx, c, r.name, &r.wait, r.opts, sigs)
	if lease == nil {
		return code
	}
	// Renewal and release must outlive the caller's cancellation: the lock
	// is given back only once COMMAND has exited.
	keep := context.WithoutCancel(ctx)
	lease.KeepAlive(keep, client.KeepAliveOptions{MaxHold: r.maxHold})
	defer func() {
		rctx, cancel := context.WithTimeout(keep, 5*time.Second)
		defer cancel()
		if err := lease.Release(rctx); err != nil && !errors.Is(err, client.ErrNotHolder) {
			fmt.Fprintf(e.stderr, "lockctl run: releasing %s: %v (it expires by itself within %v)\n", r.name, err, r.wait.ttl)
		}
	}()

	cmd, code := e.startCommand(r.argv, lease)
	if cmd == nil {
		return code
	}
	return e.supervise(cmd, lease, r, sigs)
}

// parseRun reads the flags and arguments of "lockctl run". It returns -1
// as the code when the command is to go ahead, else the exit code.
func (e *env) parseRun(args []string) (runArgs, int) {
	var r runArgs
	fs := e.flags("[flags] NAME -- COMMAND [ARGS...]")
	r.wait.register(fs, e.getenv)
	fs.DurationVar(&r.maxHold, "max-hold", 0, "stop COMMAND (as on loss, exit 70) after holding the lock this `duration` (default: no limit)")
	fs.DurationVar(&r.grace, "kill-grace", 5*time.Second, "after SIGTERM, wait this `duration` for COMMAND before SIGKILL")
	if code := e.parse(fs, args, 1); code >= 0 {
		return r, code
	}
	var err error
	if r.opts, err = r.wait.options(); err != nil {
		return r, e.usageError("%v", err)
	}
	rest := fs.Args()
	if len(rest) > 1 && rest[1] == "--" {
		rest = append(rest[:1:1], rest[2:]...)
	}
	if len(rest) < 2 {
		return r, e.usageError("want NAME -- COMMAND [ARGS...]")
	}
	if r.maxHold < 0 || r.grace < 0 {
		return r, e.usageError("--max-hold and --kill-grace must not be negative")
	}
	r.name, r.argv = rest[0], rest[1:]
	return r, -1
}

// startCommand starts COMMAND with the lease in its environment. It
// returns nil and the exit code when it cannot.
func (e *env) startCommand(argv []string, lease *client.Lease) (*exec.Cmd, int) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	// TRACEPARENT and TRACESTATE pass through unchanged: lockctl makes no
	// span, so the caller's span is still the command's parent.
	cmd.Env = append(os.Environ(),
		"LOCK_NAME="+lease.Name(),
		"LOCK_FENCE="+strconv.FormatInt(lease.Fence(), 10),
		"LOCK_OWNER="+lease.Owner(),
	)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(e.stderr, "lockctl run: %v\n", err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return nil, exitNotFound
		}
		return nil, exitCannotExec
	}
	return cmd, 0
}

// supervise waits for COMMAND to exit, passing signals on, and stops it
// (SIGTERM, then SIGKILL after the grace) when the lease ends under it. It
// returns COMMAND's status, or exitLost when the lease ended first.
func (e *env) supervise(cmd *exec.Cmd, lease *client.Lease, r runArgs, sigs <-chan os.Signal) int {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var ended error // why the lease ended while COMMAND ran
	done := lease.Done()
	var kill <-chan time.Time
	for {
		select {
		case err := <-exited:
			if ended != nil {
				return exitLost
			}
			return exitStatus(err)
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case <-done:
			done = nil
			ended = lease.Err()
			why := "lost the lock"
			if errors.Is(ended, client.ErrMaxHold) {
				why = fmt.Sprintf("held the lock for --max-hold %v", r.maxHold)
			}
			fmt.Fprintf(e.stderr, "lockctl run: %s %s (%v); stopping %s with SIGTERM, SIGKILL in %v\n", why, r.name, ended, r.argv[0], r.grace)
			_ = cmd.Process.Signal(syscall.SIGTERM)
			kill = time.After(r.grace)
		case <-kill:
			kill = nil
			fmt.Fprintf(e.stderr, "lockctl run: %s still running after %v; SIGKILL\n", r.argv[0], r.grace)
			_ = cmd.Process.Kill()
		}
	}
}

// acquireInterruptibly takes the lock (or a semaphore's permit), giving up
// on SIGINT or SIGTERM. It returns the lease, or nil and the exit code.
func (e *env) acquireInterruptibly(ctx context.Context, c *client.Client, name string, w *waitFlags, opts client.AcquireOptions, sigs <-chan os.Signal) (*client.Lease, int) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		lease *client.Lease
		err   error
	}
	got := make(chan result, 1)
	go func() {
		l, err := w.acquire(ctx, c, name, opts)
		got <- result{l, err}
	}()
	if opts.Wait != 0 && isTerminal(e.stderr) {
		statusCtx, stopStatus := context.WithCancel(ctx)
		shown := make(chan struct{})
		get := func(ctx context.Context) (client.LockInfo, error) { return w.get(ctx, c, name) }
		go func() { defer close(shown); showWaiting(statusCtx, e.stderr, name, opts.Owner, get) }()
		defer func() { stopStatus(); <-shown }()
	}
	var sig os.Signal
	var r result
	select {
	case r = <-got:
	case sig = <-sigs:
		cancel()
		r = <-got
		if r.lease != nil {
			// Granted just as the signal came: give it back at once.
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = r.lease.Release(rctx)
			rcancel()
		}
		fmt.Fprintf(e.stderr, "lockctl run: %v while waiting for %s\n", sig, name)
		return nil, 128 + int(sig.(syscall.Signal))
	}
	if r.err != nil {
		return nil, e.fail(r.err, w.conflictEx)
	}
	return r.lease, 0
}

// exitStatus is COMMAND's status as a shell reports it: its exit code, or
// 128+N when signal N killed it.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return exitCannotExec
}
