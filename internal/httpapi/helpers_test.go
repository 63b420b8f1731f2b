package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m)
}

// cluster is one Redis with lockd replicas in front of it, each with its own
// connections and its own release subscription, as separate processes have.
type cluster struct {
	replicas []*replica
	rdb      *redis.Client // for looking behind the service's back
	srv      *redistest.Server
}

type replica struct {
	url     string
	locks   *lock.Manager
	handler http.Handler // what url serves, for tests that need their own http.Server
}

// clusterOptions are a cluster's settings: the HTTP layer's, and the lock
// Manager's that tests vary.
type clusterOptions struct {
	Options
	// MaxWaiters is lock.Config.MaxWaiters (0: its default).
	MaxWaiters int
	// Peers makes every replica's UIPeers the other replicas, as the
	// dashboard's demo buttons need.
	Peers bool
	// TraceRedis gives the lock Manager Options.TracerProvider too, for
	// Redis command and wait spans.
	TraceRedis bool
}

func startCluster(t testing.TB, n int, opts Options) *cluster {
	t.Helper()
	return startClusterWith(t, n, clusterOptions{Options: opts})
}

func startClusterWith(t testing.TB, n int, co clusterOptions) *cluster {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{Password: "pw"})
	c := &cluster{rdb: srv.Client(t, 0), srv: srv}
	// Servers are made before handlers so that each knows its peers' URLs.
	servers := make([]*httptest.Server, n)
	for i := range servers {
		servers[i] = httptest.NewUnstartedServer(nil)
	}
	for i, hs := range servers {
		rc := co
		if rc.Replica == "" {
			rc.Replica = "replica-" + strconv.Itoa(i) // lock events tell replicas apart
		}
		if co.Peers {
			rc.UIPeers = nil
			for j, other := range servers {
				if j != i {
					rc.UIPeers = append(rc.UIPeers, "http://"+other.Listener.Addr().String())
				}
			}
		}
		lc := lock.Config{Nodes: []*redis.Options{{
			Addr: srv.Addr, Password: "pw", DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		}}}
		c.replicas = append(c.replicas, startReplica(t, lc, rc, hs, func() { waitSubscribed(t, srv.Addr) }))
	}
	return c
}

// startReplica serves a new replica over the Redis lc names on hs, an
// unstarted server, and returns once subscribed says its release
// subscriptions are on.
func startReplica(t testing.TB, lc lock.Config, co clusterOptions, hs *httptest.Server, subscribed func()) *replica {
	t.Helper()
	lc.MaxWaiters, lc.Replica = co.MaxWaiters, co.Options.Replica
	if co.TraceRedis {
		lc.TracerProvider = co.TracerProvider
	}
	m := lock.New(lc)
	opts := co.Options
	if err := m.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan struct{})
	go func() { defer close(listening); m.Run(ctx) }()
	if opts.LockExpiry == 0 {
		opts.LockExpiry, opts.CriticalSection = 30*time.Second, 30*time.Second
	}
	h, err := NewHandler(slog.New(slog.DiscardHandler), m, opts)
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = h
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		cancel()
		<-listening
		_ = m.Close()
	})
	subscribed()
	return &replica{url: hs.URL, locks: m, handler: h}
}

// waitSubscribed returns once a release subscription is on, so a test's
// first release is not announced to nobody.
func waitSubscribed(t testing.TB, addr string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: "pw"})
	defer rdb.Close()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		n, err := rdb.PubSubNumSub(context.Background(), lock.ReleasedChannel).Result()
		if err == nil && n[lock.ReleasedChannel] > 0 {
			return
		}
	}
	t.Fatal("release subscription never started")
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into v, failing the test when it does not fit.
func (r response) json(t testing.TB, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

// errorCode is the stable code of an error answer, "" for any other body.
func (r response) errorCode() string {
	var e struct{ Error struct{ Code string } }
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

// call sends one request through the OpenAPI-validating client. It does
// not fail the test on a transport error (it may run in a goroutine); the
// status is then 0.
func call(t testing.TB, ctx context.Context, method, url, body string) response {
	t.Helper()
	return callWith(t, ctx, method, url, body, nil)
}

// callWith is call with extra request headers (Authorization,
// Content-Type, X-Request-ID).
func callWith(t testing.TB, ctx context.Context, method, url, body string, header http.Header) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return response{}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := apiClient(t).Do(req)
	if err != nil {
		if ctx.Err() == nil {
			t.Errorf("%s %s: %v", method, url, err)
		}
		return response{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s %s: reading body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func post(t testing.TB, url, body string) response {
	t.Helper()
	return call(t, context.Background(), http.MethodPost, url, body)
}

func get(t testing.TB, url string) response {
	t.Helper()
	return call(t, context.Background(), http.MethodGet, url, "")
}

// decodeOK decodes resp's body, failing the test, named by what, unless
// resp is a 200.
func decodeOK[T any](t testing.TB, what string, resp response) T {
	t.Helper()
	if resp.status != http.StatusOK {
		t.Fatalf("%s: %d %s", what, resp.status, resp.body)
	}
	var v T
	resp.json(t, &v)
	return v
}

// acquire takes name on r and fails the test unless it is granted.
func (r *replica) acquire(t testing.TB, name, body string) leaseJSON {
	t.Helper()
	return decodeOK[leaseJSON](t, "acquire "+name, post(t, r.url+"/v1/locks/"+name+"/acquire", body))
}

// inspect is GET /v1/locks/{name} on r.
func (r *replica) inspect(t testing.TB, name string) lockJSON {
	t.Helper()
	return decodeOK[lockJSON](t, "get "+name, get(t, r.url+"/v1/locks/"+name))
}

func tokenBody(token string) string {
	b, _ := json.Marshal(map[string]string{"token": token})
	return string(b)
}
