package procs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// InstallHint says how to get redis-server.
const InstallHint = "install it with: apt-get install -y redis-server"

// RedisOptions configure a redis-server. The zero value is a password-less
// server on a free port that keeps nothing on disk.
type RedisOptions struct {
	Password string
	Port     int      // 0 picks a free port
	Args     []string // extra redis-server arguments, after the defaults so they win
	// ConfigFile, when set, is the path of a configuration file read
	// before the arguments (which win over it). A sentinel needs one: it
	// writes what it learns there, and refuses to start without it.
	ConfigFile string
	// TLS serves TLS only, on Port, with a certificate for 127.0.0.1 signed
	// by a CA generated for this server (Redis.CAFile). Clients need no
	// certificate of their own.
	TLS bool
	// Users are ACL SETUSER argument lists, user name first, split on
	// spaces, run as the default user once the server is up:
	// "lockd on >secret " + lock.LockdACL.
	Users []string
	// Output, when set, receives the server's log (its stdout) instead of
	// redis.log in its directory: lockdemo shows it in its own output.
	Output io.Writer
}

// Redis is one running redis-server process.
type Redis struct {
	*Proc
	Addr     string
	Port     int
	Password string
	Dir      string
	// TLS is set when the server speaks only TLS; CAFile is then the PEM
	// file of the CA that signed its certificate.
	TLS    bool
	CAFile string

	roots *x509.CertPool // CAFile's certificate, for clients
}

// StartRedis runs a redis-server with its files in dir, on 127.0.0.1 only,
// and returns once it answers: the answer must carry its own process id,
// or it is another redis-server that holds the port. The caller stops it
// (Kill, or Stop for a clean exit). It returns the error of writing the TLS
// files, of starting the binary (with the install hint), of a server that
// exits or is not ready within 10 s (with the end of its log), or of an ACL
// rule Redis refuses (naming the user, never the rule's password).
func StartRedis(dir string, o RedisOptions) (*Redis, error) {
	if o.Port != 0 {
		return startRedis(dir, o.Port, o)
	}
	return onFreePorts(1, func(p []int) (*Redis, error) { return startRedis(dir, p[0], o) })
}

// ErrPortTaken is a server's start failing because another process bound
// its port first.
var ErrPortTaken = errors.New("port taken")

// onFreePorts calls start with n ports from FreePort, and again with new
// ones, up to 3 times in all, while it fails with ErrPortTaken.
func onFreePorts[T any](n int, start func(ports []int) (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range 3 {
		ports := make([]int, n)
		for i := range ports {
			if ports[i], err = FreePort(); err != nil {
				return v, err
			}
		}
		if v, err = start(ports); !errors.Is(err, ErrPortTaken) {
			return v, err
		}
	}
	return v, err
}

func startRedis(dir string, port int, o RedisOptions) (*Redis, error) {
	r := &Redis{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, Password: o.Password, Dir: dir}
	args, err := r.args(o)
	if err != nil {
		return nil, err
	}
	spec := Spec{Name: "redis-server", Path: "redis-server", Args: args, Stdout: o.Output, Stderr: o.Output}
	if r.Proc, err = Start(spec); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, InstallHint)
	}
	if err := r.waitReady(10 * time.Second); err != nil {
		r.Kill()
		return nil, err
	}
	if err := r.addUsers(o.Users); err != nil {
		r.Kill()
		return nil, err
	}
	return r, nil
}

// args are the server's command line, writing its TLS files first when it
// serves TLS.
func (r *Redis) args(o RedisOptions) ([]string, error) {
	args := []string{"--port", strconv.Itoa(r.Port)}
	if o.TLS {
		t, err := writeServerTLS(r.Dir)
		if err != nil {
			return nil, err
		}
		r.TLS, r.CAFile, r.roots = true, t.caFile, t.roots
		// Port 0 turns plaintext off, so a client that forgets TLS fails.
		args = []string{
			"--port", "0", "--tls-port", strconv.Itoa(r.Port),
			"--tls-cert-file", t.certFile, "--tls-key-file", t.keyFile,
			"--tls-ca-cert-file", t.caFile, "--tls-auth-clients", "no",
		}
	}
	args = append(args,
		"--bind", "127.0.0.1",
		"--dir", r.Dir,
		"--save", "",
		"--appendonly", "no",
	)
	if o.Output == nil {
		args = append(args, "--logfile", r.LogFile())
	}
	if o.Password != "" {
		args = append(args, "--requirepass", o.Password)
	}
	args = append(args, o.Args...)
	if o.ConfigFile != "" {
		// redis-server reads a configuration file only as its first
		// argument.
		args = append([]string{o.ConfigFile}, args...)
	}
	return args, nil
}

// LogFile is the path of the server's log, unless RedisOptions.Output
// took it.
func (r *Redis) LogFile() string { return filepath.Join(r.Dir, "redis.log") }

// ClientOptions returns go-redis options for database db as the default
// user, over TLS when the server speaks it. Callers set Username and
// Password on them to connect as another user.
func (r *Redis) ClientOptions(db int) *redis.Options {
	o := &redis.Options{Addr: r.Addr, Password: r.Password, DB: db}
	if r.TLS {
		o.TLSConfig = r.TLSConfig()
	}
	return o
}

// TLSConfig returns a client configuration that trusts only the server's
// CA, or nil for a plaintext server. Each call returns a new value, so a
// caller may change it.
func (r *Redis) TLSConfig() *tls.Config {
	if !r.TLS {
		return nil
	}
	return &tls.Config{RootCAs: r.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

func (r *Redis) addUsers(users []string) error {
	if len(users) == 0 {
		return nil
	}
	c := redis.NewClient(r.ClientOptions(0))
	defer c.Close()
	for _, u := range users {
		fields := strings.Fields(u)
		if len(fields) == 0 {
			return errors.New("procs: empty entry in RedisOptions.Users")
		}
		args := []any{"ACL", "SETUSER"}
		for _, f := range fields {
			args = append(args, f)
		}
		if err := c.Do(context.Background(), args...).Err(); err != nil {
			// The rules hold a password: name only the user.
			return fmt.Errorf("procs: ACL SETUSER %s: %w", fields[0], err)
		}
	}
	return nil
}

// waitReady waits until the server on r.Port is this process: a PING
// would be answered just as well by another redis-server that took the
// port first, and this one would then exit.
func (r *Redis) waitReady(limit time.Duration) error {
	o := r.ClientOptions(0)
	o.MaxRetries = -1
	// The 200 ms below bounds each try even when something else holds
	// the port and accepts without answering.
	o.ContextTimeoutEnabled = true
	c := redis.NewClient(o)
	defer c.Close()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		info, err := c.Info(ctx, "server").Result()
		cancel()
		if err == nil && strings.Contains(info, "process_id:"+strconv.Itoa(r.Pid())+"\r\n") {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("procs: port %d is another redis-server's", r.Port)
		}
		if r.exited() {
			tail := Tail(r.LogFile(), 5, " | ")
			if strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("procs: redis-server on %s exited at start: %w: %s", r.Addr, ErrPortTaken, tail)
			}
			return fmt.Errorf("procs: redis-server on %s exited at start: %s", r.Addr, tail)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("procs: redis-server on %s not ready after %v: %w", r.Addr, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startRedisIn runs a redis-server (StartRedis) on o.Port, or a free port,
// with its files in a subdirectory of dir named prefix-PORT: the nodes of a
// topology share dir, and their logs and data files must not clash.
func startRedisIn(dir, prefix string, o RedisOptions) (*Redis, error) {
	start := func(port int) (*Redis, error) {
		sub, err := subdir(dir, prefix, port)
		if err != nil {
			return nil, err
		}
		return startRedis(sub, port, o)
	}
	if o.Port != 0 {
		return start(o.Port)
	}
	return onFreePorts(1, func(p []int) (*Redis, error) { return start(p[0]) })
}

// subdir makes the directory prefix-PORT in dir and returns its path.
func subdir(dir, prefix string, port int) (string, error) {
	sub := filepath.Join(dir, prefix+"-"+strconv.Itoa(port))
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return "", fmt.Errorf("procs: %w", err)
	}
	return sub, nil
}

// ask asks r one question, on a client made by newClient for it alone: it
// never retries and gives up within 2 s, so asking a node that is dead or
// paused fails at once instead of stalling a wait loop. Its error names r.
func ask[C interface{ Close() error }, T any](r *Redis, newClient func(*redis.Options) C, q func(context.Context, C) (T, error)) (T, error) {
	o := r.ClientOptions(0)
	o.MaxRetries = -1
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = 500*time.Millisecond, time.Second, time.Second
	c := newClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := q(ctx, c)
	if err != nil {
		return v, fmt.Errorf("procs: ask %s: %w", r.Addr, err)
	}
	return v, nil
}

// waitUntil calls check every 50 ms until it returns nil, or returns
// check's last error once limit has passed.
func waitUntil(limit time.Duration, check func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// infoField returns the value of field in an INFO reply, "" when it is
// missing.
func infoField(info, field string) string {
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	return ""
}

// Acked returns nil once a write to master is acknowledged by all its
// replicas, and by at least atLeast of them (Redis's WAIT). A replica's
// link being up is not enough: after its first sync the master streams to
// it only on its first REPLCONF ACK, up to a second later, and until then
// WAIT cannot count it, so a caller that asks for acknowledgements
// (REDIS_MIN_REPLICAS) right after a start or a failover would be refused.
// The write is a key in a slot master serves that expires in a second; a
// node that is no master refuses it.
func Acked(master *Redis, atLeast int) error {
	_, err := ask(master, redis.NewClient, func(ctx context.Context, c *redis.Client) (int64, error) {
		replicas, err := strconv.Atoi(infoField(c.Info(ctx, "replication").Val(), "connected_slaves"))
		if err != nil {
			return 0, fmt.Errorf("procs: %s: connected_slaves: %w", master.Addr, err)
		}
		replicas = max(replicas, atLeast)
		for i := 0; ; i++ {
			err := c.Set(ctx, "procs:acked:"+strconv.Itoa(i), "1", time.Second).Err()
			if err != nil && strings.HasPrefix(err.Error(), "MOVED ") && i < 1000 {
				continue // a cluster node: that key's slot is another master's
			}
			if err != nil {
				return 0, err
			}
			break
		}
		n, err := c.Wait(ctx, replicas, 100*time.Millisecond).Result()
		if err == nil && n < int64(replicas) {
			err = fmt.Errorf("procs: %d of %d replicas acknowledged a write to %s", n, replicas, master.Addr)
		}
		return n, err
	})
	return err
}

// addrs returns the nodes' addresses.
func addrs(nodes []*Redis) []string {
	a := make([]string, len(nodes))
	for i, r := range nodes {
		a[i] = r.Addr
	}
	return a
}

// logTails returns the last n lines of the log of each node, each headed by
// its address, for the errors of a topology that did not come up and for
// failure reports.
func logTails(nodes []*Redis, n int) string {
	var b strings.Builder
	for _, r := range nodes {
		fmt.Fprintf(&b, "== %s (%s) ==\n%s\n", r.Addr, r.LogFile(), Tail(r.LogFile(), n, "\n"))
	}
	return b.String()
}
