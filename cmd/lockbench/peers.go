package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
)

// naiveLocker calls the naive service (cmd/lockbench/naive) at base.
func naiveLocker(a *api, base string) locker {
	return func(ctx context.Context, name string) (func(context.Context) error, error) {
		var l struct {
			Token string `json:"token"`
		}
		if err := a.postJSON(ctx, base, []string{"acquire", name}, nil, http.StatusOK, &l); err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			return a.postJSON(ctx, base, []string{"release", name}, map[string]string{"token": l.Token}, http.StatusNoContent, nil)
		}, nil
	}
}

// etcdServer is one etcd member that lockbench runs as a peer, its data on
// tmpfs so that fsync is not what gets compared.
type etcdServer struct {
	p       *procs.Proc
	bin     string
	url     string
	dataDir string
}

// etcdInstallHint says how to get the binary the etcd rows need.
const etcdInstallHint = "Debian/Ubuntu: apt-get install etcd-server"

// startEtcd runs etcd on two free loopback ports (client and peer) with
// its data under /dev/shm. It returns nil and why when there is no etcd
// binary or it does not come up, so that its rows are skipped, never failed.
func startEtcd(ctx context.Context, logDir string) (*etcdServer, string) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, "etcd is not on PATH (" + etcdInstallHint + "), so its rows are skipped"
	}
	shm := "/dev/shm"
	if st, err := os.Stat(shm); err != nil || !st.IsDir() {
		return nil, "there is no /dev/shm to keep etcd's data on tmpfs, so its rows are skipped"
	}
	data, err := os.MkdirTemp(shm, "lockbench-etcd")
	if err != nil {
		return nil, fmt.Sprintf("etcd's data directory: %v; its rows are skipped", err)
	}
	client, err1 := procs.FreePort()
	peer, err2 := procs.FreePort()
	if err1 != nil || err2 != nil {
		os.RemoveAll(data)
		return nil, "no free port for etcd; its rows are skipped"
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(client)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
	p, err := procs.Start(procs.Spec{Name: "etcd", Path: bin, LogFile: filepath.Join(logDir, "etcd.log"), Args: []string{
		"--name", "lockbench", "--data-dir", data,
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "lockbench=" + peerURL, "--log-level", "warn"}})
	if err != nil {
		os.RemoveAll(data)
		return nil, fmt.Sprintf("%v; its rows are skipped", err)
	}
	e := &etcdServer{p: p, bin: bin, url: clientURL, dataDir: data}
	a := newAPI(1)
	defer a.close()
	err = waitFor(ctx, "etcd on "+clientURL, func() error {
		var h struct {
			Health string `json:"health"`
		}
		code, b, err := a.do(ctx, http.MethodGet, clientURL+"/health", nil)
		if err == nil && (code != http.StatusOK || json.Unmarshal(b, &h) != nil || h.Health != "true") {
			err = fmt.Errorf("/health: %d %s", code, b)
		}
		return err
	})
	if err != nil {
		e.stop()
		return nil, fmt.Sprintf("%v (its log: %s); its rows are skipped", err, filepath.Join(logDir, "etcd.log"))
	}
	return e, ""
}

func (e *etcdServer) stop() {
	e.p.Stop(stopGrace)
	os.RemoveAll(e.dataDir)
}

func (e *etcdServer) version(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, e.bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	var v string
	if _, err := fmt.Sscanf(string(out), "etcd Version: %s", &v); err != nil {
		return "unknown"
	}
	return v
}

// etcdLease is how long each client's lease lasts: longer than any run.
const etcdLease = time.Hour

// locker uses etcd's lock service through its JSON gateway, as a program
// that has no etcd client library does: each client grants itself one
// lease (POST /v3/lease/grant) and then locks (/v3/lock/lock, a base64
// name and the lease) and unlocks (/v3/lock/unlock, the returned key). A
// client here is one concurrent cycle: leases are kept in a pool that
// grows to the concurrency and are reused.
func (e *etcdServer) locker(a *api) locker {
	leases := make(chan string, 256)
	return func(ctx context.Context, name string) (func(context.Context) error, error) {
		var id string
		select {
		case id = <-leases:
		default:
			var err error
			if id, err = e.grantLease(ctx, a); err != nil {
				return nil, err
			}
		}
		key, err := e.lock(ctx, a, name, id)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			if err := e.unlock(ctx, a, key); err != nil {
				return err
			}
			select {
			case leases <- id:
			default:
			}
			return nil
		}, nil
	}
}

// competitor is the hand-off's competitor on etcd's lock service:
// competitor w holds the name with leases[w], granted before the run (see
// grantLeases), and /v3/lock/lock answers once every earlier request for
// the name has unlocked (etcd queues them by revision).
func (e *etcdServer) competitor(a *api, name string, leases []string) competitor {
	return func(ctx context.Context, w int) (func() error, error) {
		key, err := e.lock(ctx, a, name, leases[w])
		if err != nil {
			return nil, err
		}
		return func() error { return e.unlock(context.Background(), a, key) }, nil
	}
}

// grantLeases grants n leases, one per competitor, so that no run pays for
// them.
func (e *etcdServer) grantLeases(ctx context.Context, a *api, n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		var err error
		if out[i], err = e.grantLease(ctx, a); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// grantLease is POST /v3/lease/grant for etcdLease; it returns the lease's
// id as the gateway writes it (a decimal string).
func (e *etcdServer) grantLease(ctx context.Context, a *api) (string, error) {
	var g struct {
		ID string `json:"ID"`
	}
	body := map[string]int64{"TTL": int64(etcdLease.Seconds())}
	if err := a.postJSON(ctx, e.url, []string{"v3", "lease", "grant"}, body, http.StatusOK, &g); err != nil {
		return "", fmt.Errorf("etcd lease: %w", err)
	}
	return g.ID, nil
}

// lock is POST /v3/lock/lock: it answers when name is held with lease, and
// returns the key that holds it.
func (e *etcdServer) lock(ctx context.Context, a *api, name, lease string) (string, error) {
	var l struct {
		Key string `json:"key"`
	}
	body := map[string]string{"name": base64.StdEncoding.EncodeToString([]byte(name)), "lease": lease}
	if err := a.postJSON(ctx, e.url, []string{"v3", "lock", "lock"}, body, http.StatusOK, &l); err != nil {
		return "", fmt.Errorf("etcd lock: %w", err)
	}
	return l.Key, nil
}

// unlock is POST /v3/lock/unlock of the key lock returned.
func (e *etcdServer) unlock(ctx context.Context, a *api, key string) error {
	if err := a.postJSON(ctx, e.url, []string{"v3", "lock", "unlock"}, map[string]string{"key": key}, http.StatusOK, nil); err != nil {
		return fmt.Errorf("etcd unlock: %w", err)
	}
	return nil
}
