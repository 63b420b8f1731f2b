package procs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelOptions configure a Sentinel set. The zero value monitors
// "mymaster", without passwords, and fails over 1 s after the master
// stops answering.
type SentinelOptions struct {
	// Name is the master's name at the sentinels: "" means "mymaster".
	Name string
	// Password is the data nodes' requirepass and masterauth (so replicas
	// sync, and a demoted master can follow the new one), and the
	// sentinels' auth-pass for them.
	Password string
	// SentinelPassword is the sentinels' own requirepass, and their
	// sentinel-pass: a sentinel authenticates with the others with it.
	SentinelPassword string
	// DownAfter is down-after-milliseconds: how long the master may not
	// answer before a sentinel thinks it down. 0 means 1 s (Redis's own
	// default is 30 s).
	DownAfter time.Duration
	// FailoverTimeout is failover-timeout; a failover that lost its
	// election is retried only after twice this. 0 means 5 s (Redis's own
	// default is 3 minutes).
	FailoverTimeout time.Duration
}

// SentinelSet is a running master with two replicas and three sentinels
// monitoring it, with a quorum of 2.
type SentinelSet struct {
	Name string // the master's name at the sentinels
	// Nodes are the data nodes: the first master, then its replicas; a
	// failover changes which is the master (Master says).
	Nodes     []*Redis
	Sentinels []*Redis
	Dir       string

	password, sentinelPassword string
}

// sentinelStartLimit bounds StartSentinel as a whole.
const sentinelStartLimit = 60 * time.Second

// StartSentinel runs a master, two replicas of it and three sentinels,
// with their files in subdirectories of dir, on free loopback ports. It
// returns once each replica has its link to the master up and every
// sentinel monitors the master and knows both replicas and both other
// sentinels: a sentinel that knows no replica has none to promote, and
// one that knows no other sentinel can never reach the quorum. The caller
// stops it with Kill. It returns the error of starting a process
// (StartRedis) or of writing a sentinel's configuration, or of a set not
// ready within 60 s (with the end of each log); whatever it started is
// killed then.
func StartSentinel(dir string, o SentinelOptions) (*SentinelSet, error) {
	deadline := time.Now().Add(sentinelStartLimit)
	if o.Name == "" {
		o.Name = "mymaster"
	}
	if o.DownAfter == 0 {
		o.DownAfter = time.Second
	}
	if o.FailoverTimeout == 0 {
		o.FailoverTimeout = 5 * time.Second
	}
	s := &SentinelSet{Name: o.Name, Dir: dir, password: o.Password, sentinelPassword: o.SentinelPassword}
	if err := s.start(o, deadline); err != nil {
		s.Kill()
		return nil, err
	}
	return s, nil
}

func (s *SentinelSet) start(o SentinelOptions, deadline time.Time) error {
	// A replica syncs at once, not after the 5 s Redis waits by default
	// for more replicas to share a diskless transfer.
	args := []string{"--repl-diskless-sync-delay", "0"}
	if o.Password != "" {
		args = append(args, "--masterauth", o.Password)
	}
	master, err := startRedisIn(s.Dir, "node", RedisOptions{Password: o.Password, Args: args})
	if err != nil {
		return err
	}
	s.Nodes = append(s.Nodes, master)
	replicaArgs := append(args[:len(args):len(args)], "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	for range 2 {
		r, err := startRedisIn(s.Dir, "node", RedisOptions{Password: o.Password, Args: replicaArgs})
		if err != nil {
			return err
		}
		s.Nodes = append(s.Nodes, r)
	}
	if err := waitUntil(time.Until(deadline), s.replicasLinked); err != nil {
		return fmt.Errorf("%w\n%s", err, logTails(s.Nodes, 5))
	}
	if err := waitUntil(time.Until(deadline), func() error { return Acked(master, 0) }); err != nil {
		return fmt.Errorf("%w\n%s", err, logTails(s.Nodes, 5))
	}
	for range 3 {
		if err := s.startSentinel(o, master); err != nil {
			return err
		}
	}
	if err := waitUntil(time.Until(deadline), func() error { return s.sentinelsReady(master) }); err != nil {
		return fmt.Errorf("%w\n%s", err, s.Logs(5))
	}
	return nil
}

// startSentinel starts one sentinel monitoring master, on a free port.
func (s *SentinelSet) startSentinel(o SentinelOptions, master *Redis) error {
	r, err := onFreePorts(1, func(p []int) (*Redis, error) { return s.startSentinelOn(p[0], o, master) })
	if err != nil {
		return err
	}
	s.Sentinels = append(s.Sentinels, r)
	return nil
}

// startSentinelOn starts one sentinel on port.
func (s *SentinelSet) startSentinelOn(port int, o SentinelOptions, master *Redis) (*Redis, error) {
	// The configuration is written before the start, so the directory
	// is made here rather than by startRedisIn.
	dir, err := subdir(s.Dir, "sentinel", port)
	if err != nil {
		return nil, err
	}
	// Port, bind address, directory, log file and requirepass come from
	// StartRedis's arguments, as for any other server; the sentinel
	// writes them into this file as soon as it starts.
	conf := []string{
		// Every address is an IP, never a name to look up: Redis's
		// default, written out so the file says so.
		"sentinel resolve-hostnames no",
		fmt.Sprintf("sentinel monitor %s %s %d 2", o.Name, "127.0.0.1", master.Port),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", o.Name, o.DownAfter.Milliseconds()),
		fmt.Sprintf("sentinel failover-timeout %s %d", o.Name, o.FailoverTimeout.Milliseconds()),
	}
	// Passwords are quoted: Redis then reads one with spaces or quotes in
	// it as one argument.
	if o.Password != "" {
		conf = append(conf, fmt.Sprintf("sentinel auth-pass %s %q", o.Name, o.Password))
	}
	if o.SentinelPassword != "" {
		conf = append(conf, fmt.Sprintf("sentinel sentinel-pass %q", o.SentinelPassword))
	}
	file := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(file, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("procs: %w", err)
	}
	return StartRedis(dir, RedisOptions{
		Password: o.SentinelPassword, Port: port, ConfigFile: file, Args: []string{"--sentinel"},
	})
}

// replicasLinked returns nil once every replica (all data nodes but the
// first) has its link to the master up.
func (s *SentinelSet) replicasLinked() error {
	for _, r := range s.Nodes[1:] {
		info, err := ask(r, redis.NewClient, func(ctx context.Context, c *redis.Client) (string, error) {
			return c.Info(ctx, "replication").Result()
		})
		if err != nil {
			return err
		}
		if link := infoField(info, "master_link_status"); link != "up" {
			return fmt.Errorf("procs: replica %s has master_link_status:%s", r.Addr, link)
		}
	}
	return nil
}

// sentinelsReady returns nil once every sentinel monitors master, thinks
// it up, and knows both replicas and both other sentinels.
func (s *SentinelSet) sentinelsReady(master *Redis) error {
	want := map[string]string{
		"ip": "127.0.0.1", "port": strconv.Itoa(master.Port), "flags": "master",
		"num-slaves":          strconv.Itoa(len(s.Nodes) - 1),
		"num-other-sentinels": strconv.Itoa(len(s.Sentinels) - 1),
	}
	for _, r := range s.Sentinels {
		m, err := ask(r, redis.NewSentinelClient, func(ctx context.Context, c *redis.SentinelClient) (map[string]string, error) {
			return c.Master(ctx, s.Name).Result()
		})
		if err != nil {
			return err
		}
		for k, v := range want {
			if m[k] != v {
				return fmt.Errorf("procs: sentinel %s says %s %q, want %q", r.Addr, k, m[k], v)
			}
		}
	}
	return nil
}

// SentinelAddrs are the sentinels' addresses, for a client that asks them
// for the master.
func (s *SentinelSet) SentinelAddrs() []string { return addrs(s.Sentinels) }

// FailoverOptions returns go-redis options for a client that asks the
// sentinels for the master and follows a failover.
func (s *SentinelSet) FailoverOptions() *redis.FailoverOptions {
	return &redis.FailoverOptions{
		MasterName: s.Name, SentinelAddrs: s.SentinelAddrs(),
		Password: s.password, SentinelPassword: s.sentinelPassword,
	}
}

// Master returns the data node that the first sentinel that answers names
// as the master. It returns an error when no running sentinel answers, or
// when the address it names is none of the data nodes'.
func (s *SentinelSet) Master() (*Redis, error) {
	var errs []error
	for _, r := range s.Sentinels {
		if r.exited() {
			continue
		}
		addr, err := s.masterAddr(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return s.node(addr)
	}
	return nil, fmt.Errorf("procs: no sentinel names the master: %w", errors.Join(errs...))
}

// WaitFailover waits up to limit until every running sentinel names the
// same master, not old, and that node says it is one (role:master), and
// returns it. The caller kills old first. It returns an error naming what
// was still wrong when limit passes.
func (s *SentinelSet) WaitFailover(old *Redis, limit time.Duration) (*Redis, error) {
	var master *Redis
	err := waitUntil(limit, func() error {
		var addr string
		for _, r := range s.Sentinels {
			if r.exited() {
				continue
			}
			a, err := s.masterAddr(r)
			if err != nil {
				return err
			}
			if addr != "" && a != addr {
				return fmt.Errorf("procs: sentinels name both %s and %s as the master", addr, a)
			}
			addr = a
		}
		if addr == "" {
			return errors.New("procs: no sentinel is running")
		}
		if addr == old.Addr {
			return fmt.Errorf("procs: sentinels still name %s as the master", addr)
		}
		m, err := s.node(addr)
		if err != nil {
			return err
		}
		info, err := ask(m, redis.NewClient, func(ctx context.Context, c *redis.Client) (string, error) {
			return c.Info(ctx, "replication").Result()
		})
		if err != nil {
			return err
		}
		if role := infoField(info, "role"); role != "master" {
			return fmt.Errorf("procs: the sentinels' master %s says role:%s", addr, role)
		}
		master = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("procs: no failover from %s within %v: %w", old.Addr, limit, err)
	}
	return master, nil
}

// masterAddr asks sentinel r for the master's address.
func (s *SentinelSet) masterAddr(r *Redis) (string, error) {
	hp, err := ask(r, redis.NewSentinelClient, func(ctx context.Context, c *redis.SentinelClient) ([]string, error) {
		return c.GetMasterAddrByName(ctx, s.Name).Result()
	})
	if err != nil {
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("procs: SENTINEL GET-MASTER-ADDR-BY-NAME %s on %s: got %q", s.Name, r.Addr, hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// node returns the data node at addr.
func (s *SentinelSet) node(addr string) (*Redis, error) {
	for _, r := range s.Nodes {
		if r.Addr == addr {
			return r, nil
		}
	}
	return nil, fmt.Errorf("procs: %s is none of the data nodes", addr)
}

// Kill kills the sentinels and the data nodes and waits for them to exit.
// It is safe to call more than once.
func (s *SentinelSet) Kill() {
	// Sentinels first, so none starts a failover on the way down.
	for _, r := range s.Sentinels {
		r.Kill()
	}
	for _, r := range s.Nodes {
		r.Kill()
	}
}

// Logs returns the last n lines of each process's log, for failure
// reports.
func (s *SentinelSet) Logs(n int) string {
	return logTails(append(s.Nodes[:len(s.Nodes):len(s.Nodes)], s.Sentinels...), n)
}
