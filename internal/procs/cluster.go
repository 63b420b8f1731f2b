package procs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// slotCount is the number of Redis Cluster hash slots.
const slotCount = 16384

// ClusterOptions configure a Redis Cluster. The zero value is 3 masters
// with 1 replica each, without a password, with a node timeout of 1 s.
type ClusterOptions struct {
	// Masters is the number of masters: 0 means 3, the fewest Redis
	// accepts.
	Masters int
	// Replicas is the number of replicas of each master: 0 means 1, and a
	// negative number none.
	Replicas int
	// Password is every node's requirepass, and its masterauth, so a
	// replica can sync from its master.
	Password string
	// Users are ACL SETUSER argument lists run on every node, as for
	// RedisOptions.Users.
	Users []string
	// NodeTimeout is cluster-node-timeout: how long a node may not answer
	// before the others count it as failing. 0 means 1 s, so a replica
	// takes over within seconds (Redis's own default is 15 s).
	NodeTimeout time.Duration
}

// Cluster is a running Redis Cluster.
type Cluster struct {
	// Nodes are all the nodes started, masters and replicas; a failover
	// changes which is which (Masters says).
	Nodes []*Redis
	Dir   string

	password string
	users    []string
	// ids are the node ids, read once at start: a node keeps its id for
	// life, and a killed master's id is still needed to find its slots.
	ids map[*Redis]string

	mu sync.Mutex
	// owners is each slot's master when the cluster was last seen healthy.
	owners [slotCount]*Redis
}

// clusterStartLimit bounds StartCluster as a whole.
const clusterStartLimit = 60 * time.Second

// StartCluster runs a Redis Cluster with its files in dir, each node in a
// subdirectory of its own, on free loopback ports, and returns once it is
// healthy (WaitHealthy): a replica that never synced with its master could
// not take over from it. The caller stops it with Kill. It returns the
// error of starting a node (StartRedis) or redis-cli (with the install
// hint), of redis-cli --cluster create (with the end of its output), or of
// a cluster not healthy within 60 s (with the end of each node's log);
// whatever it started is killed then.
func StartCluster(dir string, o ClusterOptions) (*Cluster, error) {
	deadline := time.Now().Add(clusterStartLimit)
	masters, replicas, nodeTimeout := o.Masters, o.Replicas, o.NodeTimeout
	if masters == 0 {
		masters = 3
	}
	switch {
	case replicas == 0:
		replicas = 1
	case replicas < 0:
		replicas = 0
	}
	if nodeTimeout == 0 {
		nodeTimeout = time.Second
	}
	c := &Cluster{Dir: dir, password: o.Password, users: o.Users, ids: map[*Redis]string{}}
	if err := c.start(masters, replicas, nodeTimeout, deadline); err != nil {
		c.Kill()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(masters, replicas int, nodeTimeout time.Duration, deadline time.Time) error {
	for range masters * (1 + replicas) {
		if err := c.startNode(nodeTimeout); err != nil {
			return err
		}
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if err := c.cli("create", args, time.Until(deadline)); err != nil {
		return err
	}
	for _, r := range c.Nodes {
		s, err := myself(r)
		if err != nil {
			return err
		}
		c.ids[r] = s.id
	}
	if err := c.waitHealthy(true, time.Until(deadline)); err != nil {
		return fmt.Errorf("%w\n%s", err, logTails(c.Nodes, 5))
	}
	ms, err := c.Masters()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := waitUntil(time.Until(deadline), func() error { return Acked(m, 0) }); err != nil {
			return fmt.Errorf("%w\n%s", err, logTails(c.Nodes, 5))
		}
	}
	return nil
}

func (c *Cluster) startNode(nodeTimeout time.Duration) error {
	r, err := onFreePorts(2, func(p []int) (*Redis, error) { return c.startNodeOn(p[0], p[1], nodeTimeout) })
	if err != nil {
		return err
	}
	c.Nodes = append(c.Nodes, r)
	return nil
}

// startNodeOn starts one cluster node on port, its bus on bus.
func (c *Cluster) startNodeOn(port, bus int, nodeTimeout time.Duration) (*Redis, error) {
	args := []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes-" + strconv.Itoa(port) + ".conf",
		// The bus is on port+10000 by default: that port may be taken,
		// and is past 65535 for many of the ports FreePort returns.
		"--cluster-port", strconv.Itoa(bus),
		"--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10),
		// A replica syncs at once, not after the 5 s Redis waits by
		// default for more replicas to share a diskless transfer.
		"--repl-diskless-sync-delay", "0",
	}
	if c.password != "" {
		args = append(args, "--masterauth", c.password)
	}
	return startRedisIn(c.Dir, "node", RedisOptions{Password: c.password, Port: port, Args: args, Users: c.users})
}

// cli runs redis-cli with args and waits up to limit for it to finish. Its
// output goes to redis-cli-NAME.log in the cluster's directory.
func (c *Cluster) cli(name string, args []string, limit time.Duration) error {
	log := filepath.Join(c.Dir, "redis-cli-"+name+".log")
	// On a colour terminal redis-cli colours its output, escape codes and
	// all, even into a file. The password goes in the environment, not
	// on the command line: there redis-cli warns about it in its output
	// and any process on the machine can read it.
	env := append(os.Environ(), "TERM=dumb")
	if c.password != "" {
		env = append(env, "REDISCLI_AUTH="+c.password)
	}
	p, err := Start(Spec{Name: "redis-cli", Path: "redis-cli", Args: args, Env: env, LogFile: log})
	if err != nil {
		return fmt.Errorf("%w (%s)", err, InstallHint)
	}
	select {
	case <-p.Done():
	case <-time.After(limit):
		p.Kill()
		return fmt.Errorf("procs: redis-cli --cluster %s did not finish within %v:\n%s", name, limit, Tail(log, 10, "\n"))
	}
	if !p.cmd.ProcessState.Success() {
		return fmt.Errorf("procs: redis-cli --cluster %s failed (%v):\n%s", name, p.cmd.ProcessState, Tail(log, 10, "\n"))
	}
	return nil
}

// Addrs are the addresses of all the nodes, as seeds for a cluster client.
func (c *Cluster) Addrs() []string { return addrs(c.Nodes) }

// ClientOptions returns go-redis options for a client of the cluster.
func (c *Cluster) ClientOptions() *redis.ClusterOptions {
	return &redis.ClusterOptions{Addrs: c.Addrs(), Password: c.password}
}

// NodeID returns r's cluster node id, also after r was killed. It returns
// an error when r is not a node of c.
func (c *Cluster) NodeID(r *Redis) (string, error) {
	id, ok := c.ids[r]
	if !ok {
		return "", fmt.Errorf("procs: %s is not a node of this cluster", r.Addr)
	}
	return id, nil
}

// Masters returns the running nodes that say they are masters, each asked
// itself (its own line of CLUSTER NODES): a failover changes which nodes
// those are. It returns the error of a running node that does not answer.
func (c *Cluster) Masters() ([]*Redis, error) {
	return c.masters(func(self) bool { return true })
}

// MasterForSlot returns the running master that says it serves slot. It
// returns the error of a running node that does not answer, or an error
// when no master, or more than one, says so (as for a moment during a
// failover or a resharding).
func (c *Cluster) MasterForSlot(slot int) (*Redis, error) {
	if slot < 0 || slot >= slotCount {
		return nil, fmt.Errorf("procs: slot %d is not in [0, %d)", slot, slotCount)
	}
	found, err := c.masters(func(s self) bool { return s.serves(slot) })
	if err != nil {
		return nil, err
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("procs: %d running masters say they serve slot %d", len(found), slot)
	}
	return found[0], nil
}

// ReplicasOf returns the running nodes that say they replicate master
// (the master field of their own line of CLUSTER NODES). It returns the
// error of a running node that does not answer.
func (c *Cluster) ReplicasOf(master *Redis) ([]*Redis, error) {
	id, err := c.NodeID(master)
	if err != nil {
		return nil, err
	}
	return c.nodesWhere(func(s self) bool { return s.masterID == id })
}

// masters returns the running nodes that say they are masters and whose
// own view of themselves satisfies keep.
func (c *Cluster) masters(keep func(self) bool) ([]*Redis, error) {
	return c.nodesWhere(func(s self) bool { return s.master && keep(s) })
}

// nodesWhere returns the running nodes whose own view of themselves
// satisfies keep.
func (c *Cluster) nodesWhere(keep func(self) bool) ([]*Redis, error) {
	var found []*Redis
	for _, r := range c.Nodes {
		if r.exited() {
			continue
		}
		s, err := myself(r)
		if err != nil {
			return nil, err
		}
		if keep(s) {
			found = append(found, r)
		}
	}
	return found, nil
}

// Reshard moves n slots from one master to another with redis-cli
// --cluster reshard, keys and all, and waits up to 10 s for the cluster
// to be healthy again: redis-cli tells the masters, and the replicas learn
// of the new owners by gossip, after it exits. It returns an error when
// from or to is not a node of c, the error of redis-cli (with the end of
// its output), or that of WaitHealthy.
func (c *Cluster) Reshard(from, to *Redis, n int) error {
	fromID, err := c.NodeID(from)
	if err != nil {
		return err
	}
	toID, err := c.NodeID(to)
	if err != nil {
		return err
	}
	args := []string{
		"--cluster", "reshard", to.Addr,
		"--cluster-from", fromID, "--cluster-to", toID,
		"--cluster-slots", strconv.Itoa(n), "--cluster-yes",
	}
	if err := c.cli("reshard", args, 60*time.Second); err != nil {
		return err
	}
	return c.WaitHealthy(10 * time.Second)
}

// WaitHealthy waits up to limit until the cluster is healthy: every node
// that answers says cluster_state:ok and knows all the nodes, all of them
// agree on each slot's master, which is running and answers, and every
// replica that answers has its link to its master up. Nodes that were
// killed are left out. It returns an error naming what was still wrong.
func (c *Cluster) WaitHealthy(limit time.Duration) error {
	return c.waitHealthy(false, limit)
}

// waitHealthy is WaitHealthy; strict, at start, also wants every node to
// run and answer.
func (c *Cluster) waitHealthy(strict bool, limit time.Duration) error {
	_, err := c.waitOwners(strict, limit, func([slotCount]*Redis) bool { return true })
	return err
}

// waitOwners waits up to limit until the cluster is healthy and its slot
// owners satisfy done, and returns them.
func (c *Cluster) waitOwners(strict bool, limit time.Duration, done func([slotCount]*Redis) bool) ([slotCount]*Redis, error) {
	var owners [slotCount]*Redis
	err := waitUntil(limit, func() error {
		o, err := c.look(strict)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.owners = o
		c.mu.Unlock()
		if !done(o) {
			return errors.New("procs: the cluster is healthy, but not yet as awaited")
		}
		owners = o
		return nil
	})
	if err != nil {
		return owners, fmt.Errorf("procs: cluster not healthy within %v: %w", limit, err)
	}
	return owners, nil
}

// WaitFailover waits up to limit until the slots that old served when the
// cluster was last seen healthy (at start, or by WaitHealthy, Reshard or
// WaitFailover) are served by another master, the cluster is healthy, and
// returns that master: one of old's replicas, promoted. The caller kills
// old first. It returns an error when old served no slots then, or when
// the failover does not complete within limit.
func (c *Cluster) WaitFailover(old *Redis, limit time.Duration) (*Redis, error) {
	c.mu.Lock()
	var slots []int
	for s, r := range c.owners {
		if r == old {
			slots = append(slots, s)
		}
	}
	c.mu.Unlock()
	if len(slots) == 0 {
		return nil, fmt.Errorf("procs: %s served no slots when the cluster was last seen healthy", old.Addr)
	}
	owners, err := c.waitOwners(false, limit, func(owners [slotCount]*Redis) bool {
		for _, s := range slots {
			if owners[s] == old {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("procs: no failover from %s: %w", old.Addr, err)
	}
	return owners[slots[0]], nil
}

// Kill kills every node and waits for them to exit. It is safe to call
// more than once.
func (c *Cluster) Kill() {
	for _, r := range c.Nodes {
		r.Kill()
	}
}

// Logs returns the last n lines of each node's log and of redis-cli's
// output, for failure reports.
func (c *Cluster) Logs(n int) string {
	var b strings.Builder
	b.WriteString(logTails(c.Nodes, n))
	cli, _ := filepath.Glob(filepath.Join(c.Dir, "redis-cli-*.log"))
	for _, f := range cli {
		fmt.Fprintf(&b, "== %s ==\n%s\n", f, Tail(f, n, "\n"))
	}
	return b.String()
}

// look checks once that the cluster is healthy, as WaitHealthy describes,
// and returns each slot's master; strict also wants every node to run and
// answer.
func (c *Cluster) look(strict bool) ([slotCount]*Redis, error) {
	var owners [slotCount]*Redis
	byAddr := map[string]*Redis{}
	for _, r := range c.Nodes {
		byAddr[r.Addr] = r
	}
	roles := map[*Redis]string{} // of the nodes that answered
	var first *Redis
	var agreed [slotCount]string
	for _, r := range c.Nodes {
		if r.exited() {
			if strict {
				return owners, fmt.Errorf("procs: %s exited", r.Addr)
			}
			continue
		}
		v, err := askNode(r)
		if err != nil {
			if strict {
				return owners, err
			}
			continue
		}
		if v.state != "ok" {
			return owners, fmt.Errorf("procs: %s says cluster_state:%s", r.Addr, v.state)
		}
		if v.known != strconv.Itoa(len(c.Nodes)) {
			return owners, fmt.Errorf("procs: %s knows %s nodes of %d", r.Addr, v.known, len(c.Nodes))
		}
		if v.role != "master" && v.link != "up" {
			return owners, fmt.Errorf("procs: replica %s has master_link_status:%s", r.Addr, v.link)
		}
		if first == nil {
			first, agreed = r, v.masters
		}
		for s := range slotCount {
			if v.masters[s] != agreed[s] {
				return owners, fmt.Errorf("procs: %s says slot %d is %q's, %s says %q's", r.Addr, s, v.masters[s], first.Addr, agreed[s])
			}
		}
		roles[r] = v.role
	}
	if first == nil {
		return owners, errors.New("procs: no node of the cluster answers")
	}
	for s, addr := range agreed {
		m := byAddr[addr]
		switch {
		case addr == "":
			return owners, fmt.Errorf("procs: slot %d has no master", s)
		case m == nil:
			return owners, fmt.Errorf("procs: slot %d's master %s is not a node of this cluster", s, addr)
		case roles[m] == "":
			return owners, fmt.Errorf("procs: slot %d's master %s does not answer", s, addr)
		case roles[m] != "master":
			return owners, fmt.Errorf("procs: slot %d's master %s says role:%s", s, addr, roles[m])
		}
		owners[s] = m
	}
	return owners, nil
}

// nodeView is what one node says about the cluster.
type nodeView struct {
	state, known string // cluster_state, cluster_known_nodes
	role, link   string // of INFO replication
	// masters holds each slot's master's address, "" for a slot it
	// thinks no one serves.
	masters [slotCount]string
}

// askNode asks r what it knows of the cluster, in one round trip.
func askNode(r *Redis) (nodeView, error) {
	var v nodeView
	var info, repl *redis.StringCmd
	var slots *redis.ClusterSlotsCmd
	_, err := ask(r, redis.NewClient, func(ctx context.Context, c *redis.Client) ([]redis.Cmder, error) {
		pipe := c.Pipeline()
		info = pipe.ClusterInfo(ctx)
		slots = pipe.ClusterSlots(ctx)
		repl = pipe.Info(ctx, "replication")
		return pipe.Exec(ctx)
	})
	if err != nil {
		return v, err
	}
	v.state = infoField(info.Val(), "cluster_state")
	v.known = infoField(info.Val(), "cluster_known_nodes")
	v.role = infoField(repl.Val(), "role")
	v.link = infoField(repl.Val(), "master_link_status")
	for _, rng := range slots.Val() {
		if len(rng.Nodes) == 0 || rng.Start < 0 || rng.End >= slotCount {
			continue
		}
		for s := rng.Start; s <= rng.End; s++ {
			v.masters[s] = rng.Nodes[0].Addr
		}
	}
	return v, nil
}

// self is what a node says of itself: its own line of CLUSTER NODES.
type self struct {
	id       string
	master   bool
	masterID string   // of a replica: the id of the master it copies
	slots    [][2]int // first and last slot of each range it serves
}

func (s self) serves(slot int) bool {
	for _, rng := range s.slots {
		if rng[0] <= slot && slot <= rng[1] {
			return true
		}
	}
	return false
}

// myself asks r for its own line of CLUSTER NODES, which it keeps itself
// rather than learns by gossip.
func myself(r *Redis) (self, error) {
	nodes, err := ask(r, redis.NewClient, func(ctx context.Context, c *redis.Client) (string, error) {
		return c.ClusterNodes(ctx).Result()
	})
	if err != nil {
		return self{}, err
	}
	for line := range strings.SplitSeq(nodes, "\n") {
		// id addr flags master ping-sent pong-recv epoch link slot...
		f := strings.Fields(line)
		if len(f) < 8 || !hasFlag(f[2], "myself") {
			continue
		}
		s := self{id: f[0], master: hasFlag(f[2], "master")}
		if f[3] != "-" {
			s.masterID = f[3]
		}
		for _, rng := range f[8:] {
			if strings.HasPrefix(rng, "[") {
				continue // a slot being imported or migrated: not yet or no longer its own
			}
			lo, hi, _ := strings.Cut(rng, "-")
			first, err1 := strconv.Atoi(lo)
			last, err2 := strconv.Atoi(hi)
			if hi == "" {
				last, err2 = first, nil
			}
			if err1 != nil || err2 != nil {
				return self{}, fmt.Errorf("procs: CLUSTER NODES on %s: bad slot range %q", r.Addr, rng)
			}
			s.slots = append(s.slots, [2]int{first, last})
		}
		return s, nil
	}
	return self{}, fmt.Errorf("procs: CLUSTER NODES on %s has no line for itself", r.Addr)
}

func hasFlag(flags, flag string) bool {
	for f := range strings.SplitSeq(flags, ",") {
		if f == flag {
			return true
		}
	}
	return false
}
