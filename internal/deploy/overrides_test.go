package deploy

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/config"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// TestComposeLockdEnvironment loads each way to run compose, the base file
// alone and with each override, and checks that both replicas keep their
// ports and healthcheck, get only variables lockd reads, and that lockd
// accepts their environment in the intended mode: an override that left a
// base variable behind (REDIS_ADDR beside REDIS_CLUSTER_ADDRS, .env's
// REDIS_DB=1 in a cluster) would be refused.
func TestComposeLockdEnvironment(t *testing.T) {
	reads := configVariables(t)
	for _, tt := range []struct {
		override, mode, addrs string
		db                    int
	}{
		{"", "single", "redis:6379", 1},
		{"docker-compose.redlock.yml", "quorum", "redis:6379,redis-2:6379,redis-3:6379", 1},
		{"docker-compose.cluster.yml", "cluster", "redis:6379,redis-2:6379,redis-3:6379,redis-4:6379,redis-5:6379,redis-6:6379", 0},
		{"docker-compose.sentinel.yml", "sentinel", "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379", 1},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			var p *types.Project
			if tt.override == "" {
				p = loadProject(t)
			} else {
				p = loadProject(t, tt.override)
			}
			for name, port := range map[string]string{"web-1": "8081", "web-2": "8082"} {
				s := service(t, p, name)
				if len(s.Ports) != 1 || s.Ports[0].Published != port || s.Ports[0].Target != 8080 {
					t.Errorf("%s ports %+v, want %s->8080", name, s.Ports, port)
				}
				if hc := s.HealthCheck; hc == nil || !slices.Equal(hc.Test, []string{"CMD", "/lockd", "healthcheck"}) {
					t.Errorf("%s healthcheck %+v, want the exec-form lockd healthcheck", name, hc)
				}
				for k := range s.Environment {
					if !slices.Contains(reads, k) {
						t.Errorf("%s sets %s, which lockd does not read", name, k)
					}
				}
				cfg, err := config.Load(func(k string) string { return env(s, k) })
				if err != nil {
					t.Fatalf("%s: lockd refuses its environment: %v", name, err)
				}
				if cfg.RedisMode() != tt.mode || cfg.Addrs() != tt.addrs || cfg.RedisDB() != tt.db {
					t.Errorf("%s: mode %s over %s, db %d; want %s over %s, db %d",
						name, cfg.RedisMode(), cfg.Addrs(), cfg.RedisDB(), tt.mode, tt.addrs, tt.db)
				}
			}
		})
	}
}

// clusterNodes are the services of docker-compose.cluster.yml's nodes.
var clusterNodes = []string{"redis", "redis-2", "redis-3", "redis-4", "redis-5", "redis-6"}

// TestComposeCluster loads the cluster override on top of the compose file,
// as `docker compose -f docker-compose.yml -f docker-compose.cluster.yml up`
// does: six password-protected cluster nodes with volumes of their own, an
// init service that waits for them, and the replicas waiting for it.
func TestComposeCluster(t *testing.T) {
	p := loadProject(t, "docker-compose.cluster.yml")
	got := p.ServiceNames()
	slices.Sort(got)
	want := append([]string{"redis-cluster-init", "redis-insight", "web-1", "web-2"}, clusterNodes...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	volumes := map[string]bool{}
	for _, name := range clusterNodes {
		r := service(t, p, name)
		cmd := strings.Join(r.Command, " ")
		for _, want := range []string{"--requirepass password", "--masterauth password", "--cluster-enabled yes",
			"--cluster-node-timeout ", "--appendonly yes", "--maxmemory-policy noeviction"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("%s command %q lacks %s", name, cmd, want)
			}
		}
		if r.HealthCheck == nil || len(r.HealthCheck.Test) != 2 {
			t.Fatalf("%s healthcheck %+v", name, r.HealthCheck)
		}
		checkHealthcheckRejectsNOAUTH(t, r.HealthCheck.Test[1])
		if len(r.Volumes) != 1 || r.Volumes[0].Target != "/data" || r.Volumes[0].Type != "volume" || r.Volumes[0].Source == "redis-data" {
			t.Errorf("%s volumes %+v, want one named volume of its own on /data (not the base file's redis-data)", name, r.Volumes)
		}
		volumes[r.Volumes[0].Source] = true
	}
	if len(volumes) != len(clusterNodes) {
		t.Errorf("data volumes %v, want one per node", volumes)
	}

	init := service(t, p, "redis-cluster-init")
	if !slices.Equal(init.Command, []string{"sh", "/redis-cluster-init.sh"}) || init.Restart != "no" {
		t.Errorf("redis-cluster-init command %v, restart %q; want the one-shot script", init.Command, init.Restart)
	}
	if len(init.Volumes) != 1 || init.Volumes[0].Source != filepath.Join(root(t), "deploy", "redis-cluster-init.sh") ||
		init.Volumes[0].Target != "/redis-cluster-init.sh" || !init.Volumes[0].ReadOnly {
		t.Errorf("redis-cluster-init volumes %+v, want deploy/redis-cluster-init.sh mounted read-only", init.Volumes)
	}
	for _, n := range clusterNodes {
		if dep, ok := init.DependsOn[n]; !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("redis-cluster-init does not wait for %s to be healthy: %+v", n, init.DependsOn)
		}
	}
	if env(init, "REDISCLI_AUTH") != "password" {
		t.Errorf("redis-cluster-init REDISCLI_AUTH = %q, want the .env password", env(init, "REDISCLI_AUTH"))
	}
	for _, name := range []string{"web-1", "web-2"} {
		s := service(t, p, name)
		if _, ok := s.Environment["REDIS_ADDR"]; ok {
			t.Errorf("%s still has the base file's REDIS_ADDR", name)
		}
		if env(s, "REDIS_CLUSTER_ADDRS") != env(init, "CLUSTER_NODES") {
			t.Errorf("%s REDIS_CLUSTER_ADDRS=%q, the init creates %q", name, env(s, "REDIS_CLUSTER_ADDRS"), env(init, "CLUSTER_NODES"))
		}
		if dep, ok := s.DependsOn["redis-cluster-init"]; !ok || dep.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s depends_on %+v, want redis-cluster-init service_completed_successfully", name, s.DependsOn)
		}
	}
	if ri := service(t, p, "redis-insight"); env(ri, "RI_REDIS_DB") != "0" {
		t.Errorf("redis-insight RI_REDIS_DB=%q, want 0: a cluster has no other database", env(ri, "RI_REDIS_DB"))
	}
}

// TestComposeSentinel loads the Sentinel override on top of the compose
// file: a master and two replicas of it, password-protected, three
// sentinels watching it under the name lockd asks them for, and the
// replicas waiting for the sentinels.
func TestComposeSentinel(t *testing.T) {
	p := loadProject(t, "docker-compose.sentinel.yml")
	got := p.ServiceNames()
	slices.Sort(got)
	if want := []string{"redis", "redis-2", "redis-3", "redis-insight", "sentinel-1", "sentinel-2", "sentinel-3", "web-1", "web-2"}; !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	for _, name := range []string{"redis", "redis-2", "redis-3"} {
		r := service(t, p, name)
		cmd := strings.Join(r.Command, " ")
		for _, want := range []string{"--requirepass password", "--masterauth password", "--appendonly yes", "--maxmemory-policy noeviction"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("%s command %q lacks %s", name, cmd, want)
			}
		}
		if replica := strings.Contains(cmd, "--replicaof redis 6379"); replica != (name != "redis") {
			t.Errorf("%s command %q: want redis-2 and redis-3, only, to replicate redis", name, cmd)
		}
		if r.HealthCheck == nil || len(r.HealthCheck.Test) != 2 {
			t.Fatalf("%s healthcheck %+v", name, r.HealthCheck)
		}
		checkHealthcheckRejectsNOAUTH(t, r.HealthCheck.Test[1])
	}
	web := service(t, p, "web-1")
	for _, name := range []string{"sentinel-1", "sentinel-2", "sentinel-3"} {
		s := service(t, p, name)
		if !slices.Equal(s.Command, []string{"sh", "/redis-sentinel.sh"}) {
			t.Errorf("%s command %v", name, s.Command)
		}
		if len(s.Volumes) != 1 || s.Volumes[0].Source != filepath.Join(root(t), "deploy", "redis-sentinel.sh") || !s.Volumes[0].ReadOnly {
			t.Errorf("%s volumes %+v, want deploy/redis-sentinel.sh mounted read-only", name, s.Volumes)
		}
		if env(s, "SENTINEL_MASTER_NAME") != env(web, "REDIS_MASTER_NAME") || env(s, "SENTINEL_MASTER") != "redis 6379" {
			t.Errorf("%s watches %q as %q; lockd asks for %q", name, env(s, "SENTINEL_MASTER"), env(s, "SENTINEL_MASTER_NAME"), env(web, "REDIS_MASTER_NAME"))
		}
		if env(s, "REDISCLI_AUTH") != env(web, "REDIS_SENTINEL_PASSWORD") {
			t.Errorf("%s password %q, lockd's REDIS_SENTINEL_PASSWORD %q", name, env(s, "REDISCLI_AUTH"), env(web, "REDIS_SENTINEL_PASSWORD"))
		}
		if s.HealthCheck == nil || len(s.HealthCheck.Test) != 2 || !strings.Contains(s.HealthCheck.Test[1], "-p 26379") {
			t.Fatalf("%s healthcheck %+v, want a CMD-SHELL ping on 26379", name, s.HealthCheck)
		}
		for _, n := range []string{"redis", "redis-2", "redis-3"} {
			if dep, ok := s.DependsOn[n]; !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s does not wait for %s to be healthy: %+v", name, n, s.DependsOn)
			}
		}
		for _, w := range []string{"web-1", "web-2"} {
			if dep, ok := service(t, p, w).DependsOn[name]; !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s does not wait for %s to be healthy", w, name)
			}
		}
	}
	for _, name := range []string{"web-1", "web-2"} {
		if _, ok := service(t, p, name).Environment["REDIS_ADDR"]; ok {
			t.Errorf("%s still has the base file's REDIS_ADDR", name)
		}
	}
}

// clusterNodeArgs are the redis-server arguments of the compose file's
// cluster nodes, for nodes started here: the cluster bus on its default
// port (port + 10000, as in the containers), and a shorter node timeout, so
// the cluster heals within a test.
func clusterNodeArgs(t *testing.T) []string {
	t.Helper()
	p := loadProject(t, "docker-compose.cluster.yml")
	cmd := service(t, p, "redis").Command
	return append(slices.Clone(cmd[1:]), "--cluster-node-timeout", "1000")
}

// startClusterNodes starts one node per port, each with its files in the
// matching dir, as compose's services; they are killed in t.Cleanup.
func startClusterNodes(t *testing.T, args []string, ports []int, dirs []string) []*redistest.Server {
	t.Helper()
	var nodes []*redistest.Server
	for i, port := range ports {
		r, err := redistest.Run(dirs[i], redistest.Options{Port: port, Password: "password", Args: args})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Stop)
		nodes = append(nodes, r)
	}
	return nodes
}

// clusterPorts returns n free ports whose cluster bus ports (+10000) are
// free too, and none of them another's bus port.
func clusterPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for len(ports) < n {
		p, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		// A bus port in the kernel's ephemeral range could be taken by
		// any client socket before the node binds it (see FreePort).
		if p+10000 >= 32768 || slices.Contains(ports, p-10000) || slices.Contains(ports, p+10000) {
			continue // a bus port among the ephemeral ones, or another node's port or bus
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		if err != nil {
			continue // taken
		}
		_ = l.Close()
		ports = append(ports, p)
	}
	return ports
}

// runClusterInit runs deploy/redis-cluster-init.sh as the compose service
// does, with the service's environment but the nodes at ports, and returns
// its output.
func runClusterInit(t *testing.T, ports []int) string {
	t.Helper()
	p := loadProject(t, "docker-compose.cluster.yml")
	s := service(t, p, "redis-cluster-init")
	var nodes []string
	for _, port := range ports {
		nodes = append(nodes, "127.0.0.1:"+strconv.Itoa(port))
	}
	cmd := exec.Command("sh", filepath.Join(root(t), "deploy", "redis-cluster-init.sh"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TERM=dumb", "CLUSTER_NODES=" + strings.Join(nodes, ","),
		"REDISCLI_AUTH=" + env(s, "REDISCLI_AUTH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cluster-init.sh: %v\n%s", err, out)
	}
	return string(out)
}

// checkClusterOK checks that every node says cluster_state:ok and that
// three of them are masters.
func checkClusterOK(t *testing.T, nodes []*redistest.Server) {
	t.Helper()
	masters := 0
	for _, r := range nodes {
		c := r.Client(t, 0)
		info, err := c.ClusterInfo(context.Background()).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			t.Fatalf("%s: CLUSTER INFO %q (%v)", r.Addr, info, err)
		}
		repl, err := c.Info(context.Background(), "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(repl, "role:master") {
			masters++
		}
	}
	if masters != 3 {
		t.Errorf("%d masters, want 3 with a replica each", masters)
	}
}

// TestClusterInitScript runs the cluster's init script against six real
// nodes started with the compose file's arguments: it creates the cluster,
// does nothing when run again (compose runs it at every up), and, after
// every node restarted at another address with its nodes.conf, brings the
// cluster back instead of failing to create it anew.
func TestClusterInitScript(t *testing.T) {
	redistest.Require(t)
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("redis-cli: %v (%s)", err, redistest.InstallHint)
	}
	args := clusterNodeArgs(t)
	var dirs []string
	for range clusterNodes {
		dirs = append(dirs, t.TempDir())
	}
	ports := clusterPorts(t, len(clusterNodes))
	nodes := startClusterNodes(t, args, ports, dirs)

	runClusterInit(t, ports)
	checkClusterOK(t, nodes)

	if out := runClusterInit(t, ports); !strings.Contains(out, "nothing to do") {
		t.Errorf("second run: %s, want nothing done", out)
	}

	for _, r := range nodes {
		r.Stop()
	}
	ports = clusterPorts(t, len(clusterNodes))
	nodes = startClusterNodes(t, args, ports, dirs)
	if out := runClusterInit(t, ports); !strings.Contains(out, "the cluster exists") {
		t.Errorf("after a restart: %s, want the existing cluster waited for", out)
	}
	checkClusterOK(t, nodes)
}

// TestSentinelScript runs the sentinels' start script, with a redis-server
// that only records how it was called: it writes sentinel.conf from the
// compose service's environment, and leaves an existing one alone (a
// sentinel rewrites it with what it learns). Then a real sentinel reads
// that file and watches a real master with its password, and the
// sentinels' healthcheck passes only with the password.
func TestSentinelScript(t *testing.T) {
	p := loadProject(t, "docker-compose.sentinel.yml")
	s := service(t, p, "sentinel-1")
	master := redistest.Start(t, redistest.Options{Password: "password"})

	bin, dir := t.TempDir(), t.TempDir()
	shim := "#!/bin/sh\necho \"$@\" > " + filepath.Join(bin, "args") + "\n"
	if err := os.WriteFile(filepath.Join(bin, "redis-server"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func() {
		t.Helper()
		cmd := exec.Command("sh", filepath.Join(root(t), "deploy", "redis-sentinel.sh"))
		cmd.Dir = dir // the container's /data
		cmd.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"),
			"SENTINEL_MASTER_NAME=" + env(s, "SENTINEL_MASTER_NAME"),
			"SENTINEL_MASTER=127.0.0.1 " + strconv.Itoa(master.Port), // for "redis 6379"
			"REDISCLI_AUTH=" + env(s, "REDISCLI_AUTH")}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("redis-sentinel.sh: %v\n%s", err, out)
		}
		args, err := os.ReadFile(filepath.Join(bin, "args"))
		if err != nil || strings.TrimSpace(string(args)) != "sentinel.conf --sentinel" {
			t.Fatalf("redis-server called with %q (%v), want sentinel.conf --sentinel", args, err)
		}
	}
	run()
	conf := filepath.Join(dir, "sentinel.conf")
	written, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sentinel monitor mymaster 127.0.0.1 " + strconv.Itoa(master.Port) + " 2\n",
		"sentinel resolve-hostnames yes\n", `sentinel auth-pass mymaster "password"` + "\n", `requirepass "password"` + "\n"} {
		if !strings.Contains(string(written), want) {
			t.Errorf("sentinel.conf lacks %q:\n%s", want, written)
		}
	}
	learned := append(written, "# what the sentinel learned\n"...)
	if err := os.WriteFile(conf, learned, 0o600); err != nil {
		t.Fatal(err)
	}
	run()
	if again, _ := os.ReadFile(conf); string(again) != string(learned) {
		t.Errorf("a second start rewrote sentinel.conf:\n%s", again)
	}

	// The port, directory and log come from procs' arguments, which win
	// over the file's.
	sentinel, err := redistest.Run(dir, redistest.Options{Password: "password", ConfigFile: conf, Args: []string{"--sentinel"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sentinel.Stop)
	c := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr, Password: "password"})
	defer c.Close()
	var m map[string]string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		m, err = c.Master(context.Background(), "mymaster").Result()
		// The run id comes from the master's INFO, which needs auth-pass.
		if err == nil && m["flags"] == "master" && m["runid"] != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sentinel never saw its master: %v %v", m, err)
		}
	}
	runHealthcheck(t, s.HealthCheck.Test[1], sentinel.Port)
}
