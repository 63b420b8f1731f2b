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

// runCmd is "lockctl run": the command runs only while the lock is held.
func runCmd(ctx context.Context, e *env, args []string) int {
	fs := e.flags("[flags] NAME -- COMMAND [ARGS...]")
	var w waitFlags
	w.register(fs, e.getenv)
	maxHold := fs.Duration("max-hold", 0, "stop COMMAND (as on loss, exit 70) after holding the lock this `duration` (default: no limit)")
	grace := fs.Duration("kill-grace", 5*time.Second, "after SIGTERM, wait this `duration` for COMMAND before SIGKILL")
	if code := e.parse(fs, args); code >= 0 {
		return code
	}
	opts, err := w.options()
	if err != nil {
		return e.usageError("%v", err)
	}
	rest := fs.Args()
	if len(rest) > 1 && rest[1] == "--" {
		rest = append(rest[:1:1], rest[2:]...)
	}
	if len(rest) < 2 {
		return e.usageError("want NAME -- COMMAND [ARGS...]")
	}
	if *maxHold < 0 || *grace < 0 {
		return e.usageError("--max-hold and --kill-grace must not be negative")
	}
	name, argv := rest[0], rest[1:]
	c, err := e.client()
	if err != nil {
		return e.usageError("%v", err)
	}

	// From here on SIGINT and SIGTERM are ours to handle: while waiting
	// they give up the wait, while COMMAND runs they are passed on.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	lease, code := e.acquireInterruptibly(ctx, c, name, opts, w.conflictEx, sigs)
	if lease == nil {
		return code
	}
	// Renewal and release must outlive the caller's cancellation: the lock
	// is given back only once COMMAND has exited.
	keep := context.WithoutCancel(ctx)
	lease.KeepAlive(keep, client.KeepAliveOptions{MaxHold: *maxHold})
	defer func() {
		rctx, cancel := context.WithTimeout(keep, 5*time.Second)
		defer cancel()
		if err := lease.Release(rctx); err != nil && !errors.Is(err, client.ErrNotHolder) {
			fmt.Fprintf(e.stderr, "lockctl run: releasing %s: %v (it expires by itself within %v)\n", name, err, w.ttl)
		}
	}()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	cmd.Env = append(os.Environ(),
		"LOCK_NAME="+lease.Name(),
		"LOCK_FENCE="+strconv.FormatInt(lease.Fence(), 10),
		"LOCK_OWNER="+lease.Owner(),
	)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(e.stderr, "lockctl run: %v\n", err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return exitNotFound
		}
		return exitCannotExec
	}
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
				why = fmt.Sprintf("held the lock for --max-hold %v", *maxHold)
			}
			fmt.Fprintf(e.stderr, "lockctl run: %s %s (%v); stopping %s with SIGTERM, SIGKILL in %v\n", why, name, ended, argv[0], *grace)
			_ = cmd.Process.Signal(syscall.SIGTERM)
			kill = time.After(*grace)
		case <-kill:
			kill = nil
			fmt.Fprintf(e.stderr, "lockctl run: %s still running after %v; SIGKILL\n", argv[0], *grace)
			_ = cmd.Process.Kill()
		}
	}
}

// acquireInterruptibly takes the lock, giving up on SIGINT or SIGTERM. It
// returns the lease, or nil and the exit code.
func (e *env) acquireInterruptibly(ctx context.Context, c *client.Client, name string, opts client.AcquireOptions, busy int, sigs <-chan os.Signal) (*client.Lease, int) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		lease *client.Lease
		err   error
	}
	got := make(chan result, 1)
	go func() {
		l, err := c.Acquire(ctx, name, opts)
		got <- result{l, err}
	}()
	if opts.Wait != 0 && isTerminal(e.stderr) {
		statusCtx, stopStatus := context.WithCancel(ctx)
		shown := make(chan struct{})
		go func() { defer close(shown); showWaiting(statusCtx, e.stderr, c, name) }()
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
		return nil, e.fail(r.err, busy)
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
