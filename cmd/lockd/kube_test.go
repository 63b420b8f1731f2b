package main

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// TestRedisDownForKubernetes: what the Kubernetes manifests rely on while
// Redis is down, on a real lockd. /readyz says 503 redis, the
// readinessProbe's /readyz?exclude=redis stays 200, the gauges the alerts
// read fall to 0, and all of it recovers when Redis is back on its port.
func TestRedisDownForKubernetes(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	srv := redistest.Start(t, redistest.Options{Password: opsPassword, Port: port})
	web := startReady(t, map[string]string{"REDIS_ADDR": addr, "REDIS_PASSWORD": opsPassword})

	// state waits until /readyz answers wantReadyz and both gauges read
	// want, checking /readyz?exclude=redis on the way.
	state := func(wantReadyz int, want float64) {
		t.Helper()
		waitUntil(t, 10*time.Second, "/readyz "+strconv.Itoa(wantReadyz)+" and gauges "+strconv.FormatFloat(want, 'g', -1, 64), func() bool {
			scrape := get(t, web.url+"/metrics").body
			return get(t, web.url+"/readyz").status == wantReadyz &&
				metric(scrape, "lockd_redis_node_up", `node="`+addr+`"`) == want && metric(scrape, "lockd_redis_quorum") == want
		})
		if r := get(t, web.url+"/readyz?exclude=redis"); r.status != http.StatusOK {
			t.Errorf("/readyz?exclude=redis: %d %s, want 200 whatever Redis does", r.status, r.body)
		}
	}
	state(http.StatusOK, 1)
	srv.Stop()
	state(http.StatusServiceUnavailable, 0)
	redistest.Start(t, redistest.Options{Password: opsPassword, Port: port})
	state(http.StatusOK, 1)
}
