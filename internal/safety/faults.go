package safety

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
)

// The faults. Each injects one thing, holds it, heals it, and marks the
// start and the end; the scenario table combines them with topologies.

// KillRedis kills node 0 with SIGKILL and restarts it on the same port and
// directory after down (0: at once). What survives depends on the node's
// persistence arguments.
func KillRedis(down time.Duration) *Fault { return KillNodes(down, 0) }

// KillNodes kills the given nodes together with SIGKILL, as the loss of a
// machine or a rack would, and restarts each on its port and directory
// after down (0: at once). Without persistence every one comes back empty.
func KillNodes(down time.Duration, nodes ...int) *Fault {
	var names []string
	for _, j := range nodes {
		names = append(names, fmt.Sprintf("redis%d", j))
	}
	who := strings.Join(names, "+")
	name := "kill -9 " + who + ", restart at once"
	if down > 0 {
		name = fmt.Sprintf("kill -9 %s, restart after %v", who, down)
	}
	return &Fault{Name: name, Run: func(h *Harness) error {
		h.FaultStart(name)
		for _, j := range nodes {
			h.Nodes[j].Kill()
		}
		time.Sleep(down)
		var errs []error
		for _, j := range nodes {
			errs = append(errs, h.Nodes[j].Restart())
		}
		h.FaultEnd(who + " restarted")
		return errors.Join(errs...)
	}}
}

// PauseRedis stops node 0 with SIGSTOP for d: its sockets stay open and
// nothing answers, the worst case for timeouts.
func PauseRedis(d time.Duration) *Fault {
	name := fmt.Sprintf("SIGSTOP redis0 for %v", d)
	return &Fault{Name: name, Run: func(h *Harness) error {
		h.FaultStart(name)
		if err := h.pauseNode(0); err != nil {
			return err
		}
		time.Sleep(d)
		err := h.resumeNode(0)
		h.FaultEnd("redis0 resumed")
		return err
	}}
}

// Toxic puts one toxiproxy toxic on the links to node 0 for d: on both
// instances' links, or only on lockd0's when asymmetric.
func Toxic(typ, stream, attrs string, d time.Duration, asymmetric bool) *Fault {
	who := "both lockd"
	if asymmetric {
		who = "lockd0"
	}
	name := fmt.Sprintf("%s %s %s on %s→redis0 for %v", typ, stream, attrs, who, d)
	return &Fault{Name: name, Run: func(h *Harness) error {
		h.FaultStart(name)
		var errs []error
		for i := range h.Lockds {
			if asymmetric && i > 0 {
				break
			}
			errs = append(errs, h.Proxies.Toxic(proxyName(i, 0), typ+"-"+stream, typ, stream, attrs))
		}
		time.Sleep(d)
		h.Proxies.Clear()
		h.FaultEnd("toxics removed")
		return errors.Join(errs...)
	}}
}

// KillLockd kills lockd0 with SIGKILL while clients have requests in flight
// on it, and starts it again on the same port after down.
func KillLockd(down time.Duration) *Fault {
	name := fmt.Sprintf("kill -9 lockd0, restart after %v", down)
	return &Fault{Name: name, Run: func(h *Harness) error {
		h.FaultStart(name)
		h.Lockds[0].Kill()
		time.Sleep(down)
		err := h.Lockds[0].Start()
		h.FaultEnd("lockd0 restarted")
		return err
	}}
}

// PauseHolder waits until the client process announces a lease it is about
// to write with, stops the process with SIGSTOP for d (longer than the
// lease), then lets it go on and write with its old fence.
func PauseHolder(d time.Duration) *Fault {
	name := fmt.Sprintf("SIGSTOP the holder process for %v", d)
	return &Fault{Name: name, Run: func(h *Harness) error {
		// Announcements from before now are stale: the lease may be over.
		for len(h.child.holds) > 0 {
			<-h.child.holds
		}
		// Only a contended lock is taken over while the holder sleeps; on
		// its private lock nobody gets a higher fence, so a late write
		// there cannot be told from a timely one.
		var got hold
		for timeout := time.After(20 * time.Second); !slices.Contains(Hot, got.lock); {
			select {
			case got = <-h.child.holds:
			case <-timeout:
				return errors.New("the client process announced no lease on a hot lock within 20s")
			}
		}
		if err := h.child.signal(syscall.SIGSTOP); err != nil {
			return err
		}
		h.FaultStart(fmt.Sprintf("%s (holds %s fence %d)", name, got.lock, got.fence))
		time.Sleep(d)
		err := h.child.signal(syscall.SIGCONT)
		h.FaultEnd("holder resumed")
		return err
	}}
}

// DeleteKeys deletes every lock:* key on node 0 behind the service's back,
// every 100ms for d: what an early expiry there (a clock jump) would do.
// One node of three is within the quorum's tolerance; a single node is not.
func DeleteKeys(d time.Duration) *Fault {
	name := fmt.Sprintf("DEL lock:* on redis0 every 100ms for %v", d)
	return &Fault{Name: name, Run: func(h *Harness) error {
		c := h.Nodes[0].Client()
		defer c.Close()
		ctx := context.Background()
		h.FaultStart(name)
		deleted := 0
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			keys, err := c.Keys(ctx, "lock:*").Result()
			if err != nil {
				return err
			}
			if len(keys) == 0 {
				continue
			}
			n, err := c.Del(ctx, keys...).Result()
			if err != nil {
				return err
			}
			deleted += int(n)
		}
		h.FaultEnd(fmt.Sprintf("deleted %d keys", deleted))
		return nil
	}}
}

// KillMaster kills the master that serves hot-0 with SIGKILL, mid-traffic,
// and leaves it down, for a replica to take over (C3, SN). In C3 that is one
// shard's master: its names wait for the failover while the other shards'
// go on, and Run fails unless the workload's names are spread over every
// master. In SN it is the only master. The fault ends with the kill: the
// failover is the system's own recovery, which the scenario's Liveness
// bounds. Run then waits for the failover and marks it on the timeline.
func KillMaster() *Fault {
	const name = "kill -9 hot-0's master, not restarted"
	return &Fault{Name: name, Run: func(h *Harness) error {
		old, served, err := h.victim(Hot[0])
		if err != nil {
			return err
		}
		h.FaultStart(fmt.Sprintf("kill -9 master %s, which serves %s", old.Addr, strings.Join(served, " ")))
		old.Kill()
		killed := time.Now()
		h.FaultEnd("master " + old.Addr + " killed")
		promoted, err := h.waitFailover(old)
		if err != nil {
			return err
		}
		h.Mark(fmt.Sprintf("failover: %s is the master, %v after the kill", promoted.Addr, time.Since(killed).Round(time.Millisecond)))
		return nil
	}}
}

// victim returns the master that serves lock, and the workload's locks it
// serves. It fails unless every master serves some lock: a kill must not
// leave a shard untested by chance.
func (h *Harness) victim(lock string) (*procs.Redis, []string, error) {
	target, err := h.masterOf(lock)
	if err != nil {
		return nil, nil, err
	}
	serves := map[*procs.Redis][]string{}
	for _, l := range allLocks() {
		m, err := h.masterOf(l)
		if err != nil {
			return nil, nil, err
		}
		serves[m] = append(serves[m], l)
	}
	masters := []*procs.Redis{target}
	if h.Cluster != nil {
		if masters, err = h.Cluster.Masters(); err != nil {
			return nil, nil, err
		}
	}
	for _, m := range masters {
		if len(serves[m]) == 0 {
			return nil, nil, fmt.Errorf("master %s serves none of the locks %v", m.Addr, allLocks())
		}
	}
	return target, serves[target], nil
}
