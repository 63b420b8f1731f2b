package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/template"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/client"
)

// Exit codes, after flock(1) and <sysexits.h>. A run's command's own
// status is passed through, so these only matter when it did not run to
// its end under the lock.
const (
	exitOK          = 0
	exitBusy        = 1  // not obtained within --wait (-E changes it); not the holder
	exitUsage       = 64 // EX_USAGE
	exitUnavailable = 69 // EX_UNAVAILABLE: lockd or its Redis unreachable
	exitLost        = 70 // EX_SOFTWARE: the lock was lost (or --max-hold ran out) while the command ran
	exitNoPerm      = 77 // EX_NOPERM: LOCKD_TOKEN missing or refused
	exitCannotExec  = 126
	exitNotFound    = 127
)

const defaultServer = "http://localhost:8081"

const usageText = `lockctl runs a command under a cluster-wide lock held in lockd, and
takes, renews, releases and lists locks from scripts.

Usage:
  lockctl run [flags] NAME -- COMMAND [ARGS...]
  lockctl acquire [flags] NAME
  lockctl extend [flags] NAME [TOKEN]
  lockctl release [flags] NAME [TOKEN]
  lockctl get [flags] NAME
  lockctl ls [flags] [PREFIX]

run takes the lock (waiting for it by default), keeps it alive while
COMMAND runs (directly, not through a shell) with LOCK_NAME, LOCK_FENCE and
LOCK_OWNER in its environment, forwards SIGINT and SIGTERM to it, and
releases the lock when it exits. If the lock is lost meanwhile, COMMAND
gets SIGTERM, then SIGKILL after --kill-grace, and lockctl exits 70.

run and acquire take the lock exclusively by default; --shared takes it
with other shared holders, and --limit N takes one of N permits of a
semaphore instead. --fair waits in the name's queue, first come first
served across every lockd replica, and --lock-delay D keeps the name
refused for D if the lease expires rather than being released.

acquire prints the lease as JSON (or --format fields); pass its token to
extend and release, as an argument or in LOCK_TOKEN. get prints one lock or
semaphore as JSON, ls a table of the held ones.

Every command takes --server URL (default $LOCKD_URL, else
http://localhost:8081) and sends $LOCKD_TOKEN as a bearer token when set.
When $TRACEPARENT (and $TRACESTATE) hold a W3C trace context, every
request carries it, so the caller's trace continues into lockd; run's
COMMAND inherits both unchanged.
"lockctl COMMAND --help" lists the command's flags.

Exit codes:
  0     done; for run, COMMAND exited 0
  N     run: COMMAND's own exit status; 128+N when killed by signal N
  1     the lock was not obtained within --wait (or -E CODE), also when
        the name is of the other kind, in a lock-delay, or a semaphore
        with another limit; extend and release: the token does not hold
        the lock
  64    usage error (bad flag, name, duration), or a feature this lockd
        does not offer (--limit, --shared, --fair, --lock-delay in quorum
        mode)
  69    lockd unreachable, or it could not reach Redis
  70    run: the lock was lost, or --max-hold ran out, while COMMAND ran
  77    LOCKD_TOKEN missing or refused
  126   run: COMMAND could not be started
  127   run: COMMAND not found
`

// run is lockctl without the process: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	cmds := map[string]func(context.Context, *env, []string) int{
		"run": runCmd, "acquire": acquireCmd, "extend": extendCmd,
		"release": releaseCmd, "get": getCmd, "ls": lsCmd,
	}
	switch args[1] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	cmd, ok := cmds[args[1]]
	if !ok {
		fmt.Fprintf(stderr, "lockctl: unknown command %q; see lockctl --help\n", args[1])
		return exitUsage
	}
	e := &env{name: args[1], getenv: getenv, stdout: stdout, stderr: stderr}
	return cmd(traceFromEnv(ctx, getenv), e, args[2:])
}

// env is what every command shares: its name, the process's environment
// and output, and the connection flags.
type env struct {
	name           string
	getenv         func(string) string
	stdout, stderr io.Writer
	server         string
}

// flags returns a FlagSet for the command with --server on it.
func (e *env) flags(synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("lockctl "+e.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	server := e.getenv("LOCKD_URL")
	if server == "" {
		server = defaultServer
	}
	fs.StringVar(&e.server, "server", server, "lockd `URL` ($LOCKD_URL)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: lockctl %s %s\n\nFlags:\n", e.name, synopsis)
		fs.PrintDefaults()
		fmt.Fprintln(fs.Output(), "\nExit codes: see lockctl --help.")
	}
	return fs
}

// parse parses args, returning the exit code to stop with, or -1 to go on.
// Flags may also follow the first leading arguments (lockctl acquire NAME
// --ttl 5s, lockctl run NAME --wait 1m -- make), as people type them.
// Parsing stops after those, at a "--", or at anything that is not one of
// fs's flags: run's COMMAND keeps its own flags, and a token that starts
// with "-" stays a token.
func (e *env) parse(fs *flag.FlagSet, args []string, leading int) int {
	var got []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitUsage
		}
		args = fs.Args()
		// A token may start with "-": only fs's flags count as flags.
		for len(args) > 0 && len(got) < leading && args[0] != "--" && !isFlag(fs, args[0]) {
			got, args = append(got, args[0]), args[1:]
		}
		if len(args) == 0 || !isFlag(fs, args[0]) {
			break
		}
	}
	// Parse again over what is left, so that fs.Args() returns it all.
	_ = fs.Parse(append([]string{"--"}, append(got, args...)...))
	return -1
}

// isFlag says whether arg is "-name", "--name" or either with "=value",
// for a flag fs defines.
func isFlag(fs *flag.FlagSet, arg string) bool {
	name, ok := strings.CutPrefix(arg, "-")
	if !ok {
		return false
	}
	name = strings.TrimPrefix(name, "-")
	name, _, _ = strings.Cut(name, "=")
	return name == "h" || name == "help" || name != "" && fs.Lookup(name) != nil
}

func (e *env) usageError(format string, a ...any) int {
	fmt.Fprintf(e.stderr, "lockctl %s: %s; see lockctl %s --help\n", e.name, fmt.Sprintf(format, a...), e.name)
	return exitUsage
}

func (e *env) client() (*client.Client, error) {
	return client.New(e.server, client.Options{Token: e.getenv("LOCKD_TOKEN")})
}

// fail reports err and returns its exit code; busy is the code for a
// lock held by someone else.
func (e *env) fail(err error, busy int) int {
	var locked *client.LockedError
	var delayed *client.LockDelayError
	var kind *client.KindMismatchError
	var limit *client.LimitMismatchError
	switch {
	case errors.As(err, &locked):
		fmt.Fprintf(e.stderr, "lockctl %s: %s (fence %d, %v left)%s\n", e.name,
			heldBy(locked.Owner, locked.Holders, locked.Mode, locked.Limit), locked.Fence, locked.TTL.Round(time.Millisecond), queueText(locked.Queue))
		return busy
	case errors.As(err, &delayed):
		left := time.Until(delayed.Until)
		if left <= 0 {
			left = delayed.RetryAfter
		}
		fmt.Fprintf(e.stderr, "lockctl %s: in a lock-delay for %v more: a lease with --lock-delay expired without a release (%v)\n", e.name, left.Round(time.Millisecond), err)
		return busy
	case errors.As(err, &kind) && kind.Kind == client.KindSemaphore:
		fmt.Fprintf(e.stderr, "lockctl %s: the name is held as a semaphore: take a permit with --limit and its holders' limit (%v)\n", e.name, err)
		return busy
	case errors.As(err, &kind):
		fmt.Fprintf(e.stderr, "lockctl %s: the name is held as a lock, not a semaphore: drop --limit (%v)\n", e.name, err)
		return busy
	case errors.As(err, &limit):
		fmt.Fprintf(e.stderr, "lockctl %s: the semaphore's holders use --limit %d (%v)\n", e.name, limit.Limit, err)
		return busy
	case errors.Is(err, client.ErrLocked), errors.Is(err, client.ErrNotHolder), errors.Is(err, client.ErrLockDelay),
		errors.Is(err, client.ErrKindMismatch), errors.Is(err, client.ErrLimitMismatch):
		fmt.Fprintf(e.stderr, "lockctl %s: %v\n", e.name, err)
		return busy
	case errors.Is(err, client.ErrUnsupported):
		fmt.Fprintf(e.stderr, "lockctl %s: %v\n", e.name, err)
		return exitUsage
	case errors.Is(err, client.ErrInvalidArgument):
		fmt.Fprintf(e.stderr, "lockctl %s: %v\n", e.name, err)
		return exitUsage
	case errors.Is(err, client.ErrUnauthenticated):
		fmt.Fprintf(e.stderr, "lockctl %s: %v (set LOCKD_TOKEN)\n", e.name, err)
		return exitNoPerm
	}
	fmt.Fprintf(e.stderr, "lockctl %s: %v\n", e.name, err)
	return exitUnavailable
}

func ownerText(owner string) string {
	if owner == "" {
		return "an unnamed owner"
	}
	return fmt.Sprintf("%q", owner)
}

// heldBy says who holds a name: owner is the latest holder's, and holders
// all of them (mode is a lock's holders', limit a semaphore's).
func heldBy(owner string, holders []client.Holder, mode client.Mode, limit int) string {
	switch {
	case limit > 0:
		return fmt.Sprintf("%d of %d permits held, the latest by %s", len(holders), limit, ownerText(owner))
	case mode == client.Shared && len(holders) > 1:
		return fmt.Sprintf("held shared by %s and %d more", ownerText(owner), len(holders)-1)
	case mode == client.Shared:
		return fmt.Sprintf("held shared by %s", ownerText(owner))
	}
	return "held by " + ownerText(owner)
}

// queueText tells how many wait in the name's fair queue, if any.
func queueText(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d in the queue", n)
}

// waitFlags are the acquire flags run and acquire share.
type waitFlags struct {
	ttl        time.Duration
	wait       string // "" when not given
	noWait     bool
	conflictEx int
	owner      string
	limit      int // a semaphore's; 0 for a lock
	shared     bool
	fair       bool
	lockDelay  time.Duration
	getenv     func(string) string
}

func (w *waitFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.DurationVar(&w.ttl, "ttl", 30*time.Second, "lease `duration`, renewed every third of it while held (100ms to lockd's MAX_TTL)")
	fs.StringVar(&w.wait, "wait", "", "give up after `duration` if the lock is held (default: wait as long as it takes)")
	fs.BoolVar(&w.noWait, "n", false, "do not wait: give up at once if the lock is held")
	fs.IntVar(&w.conflictEx, "E", exitBusy, "exit `code` when the lock is not obtained (0-255)")
	fs.StringVar(&w.owner, "owner", "", "owner `text` others see (default: $USER@host pid N)")
	fs.IntVar(&w.limit, "limit", 0, "take one of `N` permits of a semaphore instead of the lock (1 to 1000; every holder gives the same N)")
	fs.BoolVar(&w.shared, "shared", false, "take the lock shared: held with other --shared holders, never with an exclusive one")
	fs.BoolVar(&w.fair, "fair", false, "wait in the name's queue: first come, first served across every lockd replica")
	fs.DurationVar(&w.lockDelay, "lock-delay", 0, "if the lease expires instead of being released, keep the name refused for this `duration` (up to 60s)")
	w.getenv = getenv
}

// options checks the flags and turns them into AcquireOptions.
func (w *waitFlags) options() (client.AcquireOptions, error) {
	wait := time.Duration(-1) // forever, as flock(1) does
	switch {
	case w.noWait && w.wait != "":
		return client.AcquireOptions{}, errors.New("-n and --wait exclude each other")
	case w.noWait:
		wait = 0
	case w.wait != "":
		d, err := time.ParseDuration(w.wait)
		if err != nil || d < 0 {
			return client.AcquireOptions{}, fmt.Errorf("--wait %q is not a duration such as 30s or 2m", w.wait)
		}
		wait = d
	}
	if w.conflictEx < 0 || w.conflictEx > 255 {
		return client.AcquireOptions{}, fmt.Errorf("-E %d is not an exit code (0-255)", w.conflictEx)
	}
	switch {
	case w.limit < 0:
		return client.AcquireOptions{}, fmt.Errorf("--limit %d is not a number of permits (1 to 1000)", w.limit)
	case w.limit > 0 && w.shared:
		return client.AcquireOptions{}, errors.New("--limit and --shared exclude each other: a semaphore's permits have no mode")
	case w.lockDelay < 0:
		return client.AcquireOptions{}, errors.New("--lock-delay must not be negative")
	}
	owner := w.owner
	if owner == "" {
		owner = defaultOwner(w.getenv)
	}
	opts := client.AcquireOptions{TTL: w.ttl, Wait: wait, Owner: owner, Fair: w.fair, LockDelay: w.lockDelay}
	if w.shared {
		opts.Mode = client.Shared
	}
	return opts, nil
}

// acquire takes a permit of the semaphore name with --limit, else the
// lock name.
func (w *waitFlags) acquire(ctx context.Context, c *client.Client, name string, opts client.AcquireOptions) (*client.Lease, error) {
	if w.limit > 0 {
		return c.AcquireSemaphore(ctx, name, w.limit, opts)
	}
	return c.Acquire(ctx, name, opts)
}

// get is the state of what w asks for: the semaphore name with --limit,
// else the lock name.
func (w *waitFlags) get(ctx context.Context, c *client.Client, name string) (client.LockInfo, error) {
	if w.limit > 0 {
		return c.GetSemaphore(ctx, name)
	}
	return c.Get(ctx, name)
}

// defaultOwner names this process for people looking at the lock.
func defaultOwner(getenv func(string) string) string {
	host, _ := os.Hostname()
	user := getenv("USER")
	if user == "" {
		user = "lockctl"
	}
	return fmt.Sprintf("%s@%s pid %d", user, host, os.Getpid())
}

// leaseView is how acquire and extend print a lease.
type leaseView struct {
	Name      string        `json:"name"`
	Token     string        `json:"token"`
	Fence     int64         `json:"fence"`
	Owner     string        `json:"owner"`
	TTL       time.Duration `json:"-"`
	TTLMS     int64         `json:"ttl_ms"`
	ExpiresAt time.Time     `json:"expires_at"`
	Kind      client.Kind   `json:"kind"`
	Mode      client.Mode   `json:"mode,omitzero"`
	Limit     int           `json:"limit,omitzero"`
}

func viewLease(l *client.Lease) leaseView {
	left := max(time.Until(l.Until()), 0).Round(time.Millisecond)
	return leaseView{
		Name: l.Name(), Token: l.Token(), Fence: l.Fence(), Owner: l.Owner(),
		TTL: left, TTLMS: left.Milliseconds(), ExpiresAt: l.Until().UTC().Truncate(time.Millisecond),
		Kind: l.Kind(), Mode: l.Mode(), Limit: l.Limit(),
	}
}

// lockView is how get prints a lock or a semaphore. Owner, Fence and TTL
// are the latest holder's.
type lockView struct {
	Name       string        `json:"name"`
	Held       bool          `json:"held"`
	Owner      string        `json:"owner"`
	Fence      int64         `json:"fence"`
	TTL        time.Duration `json:"-"`
	TTLMS      int64         `json:"ttl_ms"`
	Kind       client.Kind   `json:"kind"`
	Mode       client.Mode   `json:"mode,omitzero"`
	Limit      int           `json:"limit,omitzero"`
	Holders    []holderView  `json:"holders"`
	Queue      int           `json:"queue"`
	DelayUntil time.Time     `json:"delay_until,omitzero"`
}

type holderView struct {
	Owner string        `json:"owner"`
	Fence int64         `json:"fence"`
	TTL   time.Duration `json:"-"`
	TTLMS int64         `json:"ttl_ms"`
	Mode  client.Mode   `json:"mode,omitzero"`
}

func viewLock(info client.LockInfo) lockView {
	v := lockView{
		Name: info.Name, Held: info.Held, Owner: info.Owner, Fence: info.Fence, TTL: info.TTL, TTLMS: info.TTL.Milliseconds(),
		Kind: info.Kind, Mode: info.Mode, Limit: info.Limit, Holders: []holderView{}, Queue: info.Queue, DelayUntil: info.DelayUntil,
	}
	for _, h := range info.Holders {
		v.Holders = append(v.Holders, holderView{Owner: h.Owner, Fence: h.Fence, TTL: h.TTL, TTLMS: h.TTL.Milliseconds(), Mode: h.Mode})
	}
	return v
}

// printer prints v as JSON, or through the --format template when given.
type printer struct {
	format string
	tmpl   *template.Template
}

func (p *printer) register(fs *flag.FlagSet, fields string) {
	fs.StringVar(&p.format, "format", "", "print with a Go text/template `template` instead of JSON, e.g. '{{.Token}}' (fields: "+fields+")")
}

// compile parses --format. It runs before anything is acquired: a bad
// template must not leave a lock held with its token never shown.
func (p *printer) compile() error {
	if p.format == "" {
		return nil
	}
	t, err := template.New("format").Parse(p.format)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	p.tmpl = t
	return nil
}

func (p *printer) print(w io.Writer, v any) error {
	if p.tmpl == nil {
		return json.NewEncoder(w).Encode(v)
	}
	if err := p.tmpl.Execute(w, v); err != nil {
		return err
	}
	var err error
	if !strings.HasSuffix(p.format, "\n") {
		_, err = io.WriteString(w, "\n")
	}
	return err
}
