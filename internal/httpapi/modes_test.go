package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// startReplicasOn serves n replicas over the Redis lc names (a cluster or
// a Sentinel set); masters are the masters whose release channels each
// replica subscribes to.
func startReplicasOn(t *testing.T, n int, lc lock.Config, masters func() []*procs.Redis, opts Options) []*replica {
	t.Helper()
	var out []*replica
	for i := range n {
		co := clusterOptions{Options: opts}
		co.Replica = "replica-" + strconv.Itoa(i)
		out = append(out, startReplica(t, lc, co, httptest.NewUnstartedServer(nil), func() {
			waitShardSubscribers(t, masters(), i+1)
		}))
	}
	return out
}

// waitShardSubscribers waits until every master has want subscribers on
// lockd's release channels (sharded in a cluster, plain otherwise).
func waitShardSubscribers(t testing.TB, masters []*procs.Redis, want int) {
	t.Helper()
	ctx := context.Background()
	for _, m := range masters {
		rdb := redis.NewClient(m.ClientOptions(0))
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: release subscriptions never started", m.Addr)
			}
			got := int64(0)
			if chans, err := rdb.PubSubShardChannels(ctx, "lockd:released:*").Result(); err == nil && len(chans) > 0 {
				n, _ := rdb.PubSubShardNumSub(ctx, chans...).Result()
				for _, c := range n {
					got += c
				}
			}
			if n, err := rdb.PubSubNumSub(ctx, lock.ReleasedChannel).Result(); err == nil {
				got += n[lock.ReleasedChannel]
			}
			if got >= int64(want) {
				break
			}
		}
		rdb.Close()
	}
}

// TestEveryRouteInEachRedisMode runs the /v1 routes, the demo's GET /lock
// and /readyz through two replicas over a Redis Cluster of three
// shards and over a Sentinel-managed master. Every answer is checked
// against doc/openapi.yaml (apiClient).
func TestEveryRouteInEachRedisMode(t *testing.T) {
	t.Parallel()
	opts := Options{LockExpiry: 2 * time.Second, CriticalSection: 100 * time.Millisecond}
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c := redistest.StartCluster(t, redistest.ClusterOptions{})
		masters := func() []*procs.Redis { return must(t, c.Masters)() }
		rs := startReplicasOn(t, 2, lock.Config{Cluster: c.ClientOptions()}, masters, opts)
		everyRoute(t, rs[0], rs[1], 3)
	})
	t.Run("sentinel", func(t *testing.T) {
		t.Parallel()
		s := redistest.StartSentinel(t, redistest.SentinelOptions{})
		masters := func() []*procs.Redis { return []*procs.Redis{must(t, s.Master)()} }
		rs := startReplicasOn(t, 2, lock.Config{Sentinel: s.FailoverOptions()}, masters, opts)
		everyRoute(t, rs[0], rs[1], 1)
	})
}

// must returns f's value, failing t on its error.
func must[T any](t testing.TB, f func() (T, error)) func() T {
	return func() T {
		t.Helper()
		v, err := f()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// everyRoute drives every route of a and b, names spread so that a
// cluster's shards all take part; readyz must list nodes entries.
func everyRoute(t *testing.T, a, b *replica, nodes int) {
	t.Helper()
	ctx := context.Background()
	var leases []leaseJSON
	for i := range 12 {
		name := fmt.Sprintf("route-%d", i)
		l := a.acquire(t, name, `{"ttl":"20s","owner":"route-owner"}`)
		resp := post(t, b.url+"/v1/locks/"+name+"/acquire", `{"ttl":"1s"}`)
		if resp.status != http.StatusConflict || resp.errorCode() != "locked" || !strings.Contains(string(resp.body), `"route-owner"`) {
			t.Fatalf("second acquire of %s: %d %s", name, resp.status, resp.body)
		}
		if got := b.inspect(t, name); !got.Held || got.Fence != l.Fence || got.Owner != "route-owner" {
			t.Fatalf("inspect %s: %+v", name, got)
		}
		if resp := post(t, b.url+"/v1/locks/"+name+"/extend", `{"token":"`+l.Token+`","ttl":"30s"}`); resp.status != http.StatusOK {
			t.Fatalf("extend %s: %d %s", name, resp.status, resp.body)
		}
		fence := strconv.FormatInt(l.Fence, 10)
		if resp := post(t, b.url+"/v1/locks/"+name+"/check", `{"fence":`+fence+`}`); resp.status != http.StatusOK {
			t.Fatalf("check %s: %d %s", name, resp.status, resp.body)
		}
		leases = append(leases, l)
	}
	var page listJSON
	listed := map[string]int{}
	for cursor := "start"; cursor != ""; cursor = page.NextCursor {
		url := b.url + "/v1/locks?prefix=route-&limit=5"
		if cursor != "start" {
			url += "&cursor=" + cursor
		}
		page.NextCursor = ""
		resp := get(t, url)
		if resp.status != http.StatusOK {
			t.Fatalf("list: %d %s", resp.status, resp.body)
		}
		resp.json(t, &page)
		for _, l := range page.Locks {
			listed[l.Name]++
		}
	}
	for _, l := range leases {
		if listed[l.Name] != 1 {
			t.Errorf("%s listed %d times", l.Name, listed[l.Name])
		}
	}
	// A waiter on b is handed each lock a releases, long before its TTL.
	for _, l := range leases {
		got := make(chan response, 1)
		go func() { got <- post(t, b.url+"/v1/locks/"+l.Name+"/acquire", `{"wait":"10s","ttl":"5s"}`) }()
		waitWaiting(t, b, 1)
		if resp := post(t, a.url+"/v1/locks/"+l.Name+"/release", tokenBody(l.Token)); resp.status != http.StatusNoContent {
			t.Fatalf("release %s: %d %s", l.Name, resp.status, resp.body)
		}
		resp := <-got
		var next leaseJSON
		if resp.json(t, &next); resp.status != http.StatusOK || next.Fence <= l.Fence {
			t.Fatalf("waiter on %s: %d %s", l.Name, resp.status, resp.body)
		}
		post(t, b.url+"/v1/locks/"+l.Name+"/release", tokenBody(next.Token))
	}
	// The demo's endpoint, with its short critical section.
	resp := call(t, ctx, http.MethodGet, a.url+"/lock?resource_id=route-demo", "")
	if resp.status != http.StatusOK {
		t.Fatalf("GET /lock: %d %s", resp.status, resp.body)
	}
	resp = get(t, a.url+"/readyz?verbose")
	var ready readyJSON
	if resp.json(t, &ready); resp.status != http.StatusOK || len(ready.Nodes) != nodes {
		t.Fatalf("readyz: %d %s", resp.status, resp.body)
	}
	for _, n := range ready.Nodes {
		if !n.OK {
			t.Fatalf("readyz: %s", resp.body)
		}
	}
}
