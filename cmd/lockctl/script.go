package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/client"
)

const leaseFields = ".Name .Token .Fence .Owner .TTL .TTLMS .ExpiresAt .Kind .Mode .Limit"

// start parses a scripting command's flags, compiles --format (p may be
// nil), checks that between min and max arguments are left, and connects.
// It returns the client, or nil and the exit code.
func (e *env) start(fs *flag.FlagSet, args []string, p *printer, minArgs, maxArgs int, want string) (*client.Client, int) {
	if code := e.parse(fs, args, maxArgs); code >= 0 {
		return nil, code
	}
	if p != nil {
		if err := p.compile(); err != nil {
			return nil, e.usageError("%v", err)
		}
	}
	if fs.NArg() < minArgs || fs.NArg() > maxArgs {
		return nil, e.usageError("want %s", want)
	}
	c, err := e.client()
	if err != nil {
		return nil, e.usageError("%v", err)
	}
	return c, 0
}

// output prints v and returns the exit code.
func (e *env) output(p *printer, v any) int {
	if err := p.print(e.stdout, v); err != nil {
		fmt.Fprintf(e.stderr, "lockctl %s: printing: %v\n", e.name, err)
		return exitUsage
	}
	return exitOK
}

// acquireCmd is "lockctl acquire": take the lock and print the lease. Its
// renewal is the caller's business (lockctl extend).
func acquireCmd(ctx context.Context, e *env, args []string) int {
	fs := e.flags("[flags] NAME")
	var w waitFlags
	w.register(fs, e.getenv)
	var p printer
	p.register(fs, leaseFields)
	c, code := e.start(fs, args, &p, 1, 1, "one NAME")
	if c == nil {
		return code
	}
	opts, err := w.options()
	if err != nil {
		return e.usageError("%v", err)
	}
	l, err := w.acquire(ctx, c, fs.Arg(0), opts)
	if err != nil {
		return e.fail(err, w.conflictEx)
	}
	return e.output(&p, viewLease(l))
}

// token is the lease token from the second argument, else from
// LOCK_TOKEN (which keeps it out of ps).
func (e *env) token(fs *flag.FlagSet) (string, bool) {
	if fs.NArg() == 2 {
		return fs.Arg(1), true
	}
	t := e.getenv("LOCK_TOKEN")
	return t, t != ""
}

// eitherKind calls lock, and semaphore instead when the name is held as a
// semaphore: a token alone does not say what it holds, and a name held
// as one kind refuses the other's calls without doing anything.
func eitherKind[T any](lock, semaphore func() (T, error)) (T, error) {
	v, err := lock()
	var km *client.KindMismatchError
	if errors.As(err, &km) && km.Kind == client.KindSemaphore {
		return semaphore()
	}
	return v, err
}

// extendCmd is "lockctl extend": renew a lease (a lock's or a semaphore
// permit's) by name and token.
func extendCmd(ctx context.Context, e *env, args []string) int {
	fs := e.flags("[flags] NAME [TOKEN]")
	ttl := fs.Duration("ttl", 0, "new validity `duration` (default: the one it was acquired with)")
	var p printer
	p.register(fs, leaseFields)
	c, code := e.start(fs, args, &p, 1, 2, "NAME and TOKEN (or LOCK_TOKEN)")
	if c == nil {
		return code
	}
	token, ok := e.token(fs)
	if !ok {
		return e.usageError("want NAME and TOKEN (or LOCK_TOKEN)")
	}
	l, err := eitherKind(
		func() (*client.Lease, error) { return c.Extend(ctx, fs.Arg(0), token, *ttl) },
		func() (*client.Lease, error) { return c.ExtendSemaphore(ctx, fs.Arg(0), token, *ttl) })
	if err != nil {
		return e.fail(err, exitBusy)
	}
	return e.output(&p, viewLease(l))
}

// releaseCmd is "lockctl release": give a lease (a lock's or a semaphore
// permit's) back by name and token.
func releaseCmd(ctx context.Context, e *env, args []string) int {
	fs := e.flags("[flags] NAME [TOKEN]")
	c, code := e.start(fs, args, nil, 1, 2, "NAME and TOKEN (or LOCK_TOKEN)")
	if c == nil {
		return code
	}
	token, ok := e.token(fs)
	if !ok {
		return e.usageError("want NAME and TOKEN (or LOCK_TOKEN)")
	}
	_, err := eitherKind(
		func() (struct{}, error) { return struct{}{}, c.Release(ctx, fs.Arg(0), token) },
		func() (struct{}, error) { return struct{}{}, c.ReleaseSemaphore(ctx, fs.Arg(0), token) })
	if err != nil {
		return e.fail(err, exitBusy)
	}
	return exitOK
}

// getCmd is "lockctl get": one lock's or semaphore's state.
func getCmd(ctx context.Context, e *env, args []string) int {
	fs := e.flags("[flags] NAME")
	var p printer
	p.register(fs, ".Name .Held .Owner .Fence .TTL .TTLMS .Kind .Mode .Limit .Holders .Queue .DelayUntil")
	c, code := e.start(fs, args, &p, 1, 1, "one NAME")
	if c == nil {
		return code
	}
	info, err := eitherKind(
		func() (client.LockInfo, error) { return c.Get(ctx, fs.Arg(0)) },
		func() (client.LockInfo, error) { return c.GetSemaphore(ctx, fs.Arg(0)) })
	if err != nil {
		return e.fail(err, exitBusy)
	}
	return e.output(&p, viewLock(info))
}

// lsCmd is "lockctl ls": a table of the held locks and semaphores, every
// page of them.
func lsCmd(ctx context.Context, e *env, args []string) int {
	fs := e.flags("[flags] [PREFIX]")
	c, code := e.start(fs, args, nil, 0, 1, "at most one PREFIX")
	if c == nil {
		return code
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tOWNER\tFENCE\tTTL\tHOLDERS\tQUEUE")
	for l, err := range c.All(ctx, fs.Arg(0)) {
		if err != nil {
			_ = tw.Flush()
			return e.fail(err, exitBusy)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%s\t%d\n", l.Name, l.Owner, l.Fence, l.TTL.Round(time.Millisecond), holdersColumn(l), l.Queue)
	}
	if err := tw.Flush(); err != nil {
		return exitUnavailable
	}
	return exitOK
}

// holdersColumn is ls's HOLDERS: "1 exclusive", "3 shared", or a
// semaphore's "2 of 5".
func holdersColumn(l client.LockInfo) string {
	n := len(l.Holders)
	switch {
	case l.Kind == client.KindSemaphore:
		return fmt.Sprintf("%d of %d", n, l.Limit)
	case l.Mode != "":
		return fmt.Sprintf("%d %s", n, l.Mode)
	}
	return strconv.Itoa(n)
}
