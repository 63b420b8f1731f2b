package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/go-distributed-lock/go-distributed-lock/internal/config"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

func root(t *testing.T) string {
	t.Helper()
	dir, err := redistest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadProject loads docker-compose.yml as `docker compose up` would, with
// the project's .env for interpolation and env_file, and nothing from the
// test's own environment.
func loadProject(t *testing.T, files ...string) *types.Project {
	t.Helper()
	dir := root(t)
	paths := []string{filepath.Join(dir, "docker-compose.yml")}
	for _, f := range files {
		paths = append(paths, filepath.Join(dir, f))
	}
	opts, err := cli.NewProjectOptions(
		paths,
		cli.WithWorkingDirectory(dir),
		cli.WithEnvFiles(filepath.Join(dir, ".env")),
		cli.WithDotEnv,
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose file does not load: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	return s
}

func env(s types.ServiceConfig, key string) string {
	if v, ok := s.Environment[key]; ok && v != nil {
		return *v
	}
	return ""
}

func TestComposeProject(t *testing.T) {
	p := loadProject(t)
	if p.Name != "go-distributed-lock" {
		t.Errorf("project name %q, want go-distributed-lock (containers go-distributed-lock-web-1, ...)", p.Name)
	}
	got := p.ServiceNames()
	slices.Sort(got)
	if want := []string{"redis", "redis-insight", "web-1", "web-2"}; !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
}

func TestComposeReplicas(t *testing.T) {
	p := loadProject(t)
	web1 := service(t, p, "web-1")
	if web1.Build == nil || web1.Build.Dockerfile != "Dockerfile" || web1.Build.Context != root(t) {
		t.Errorf("web-1 build = %+v, want the root Dockerfile", web1.Build)
	}
	for name, hostPort := range map[string]string{"web-1": "8081", "web-2": "8082"} {
		s := service(t, p, name)
		if s.Image != web1.Image || s.Image == "" {
			t.Errorf("%s image %q, want web-1's %q (built once)", name, s.Image, web1.Image)
		}
		if len(s.Ports) != 1 || s.Ports[0].Published != hostPort || s.Ports[0].Target != 8080 {
			t.Errorf("%s ports %+v, want %s->8080", name, s.Ports, hostPort)
		}
		for k, want := range map[string]string{"REDIS_ADDR": "redis:6379", "REDIS_PASSWORD": "password", "REDIS_DB": "1"} {
			if got := env(s, k); got != want {
				t.Errorf("%s %s=%q, want %q", name, k, got, want)
			}
		}
		// Each dashboard's peer is the other replica's published port.
		other := map[string]string{"web-1": "8082", "web-2": "8081"}[name]
		if got := env(s, "UI_PEERS"); got != "http://localhost:"+other || env(s, "REPLICA_NAME") != name {
			t.Errorf("%s UI_PEERS=%q REPLICA_NAME=%q, want the other replica and its own name", name, got, env(s, "REPLICA_NAME"))
		}
		if dep, ok := s.DependsOn["redis"]; !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s depends_on %+v, want redis service_healthy", name, s.DependsOn)
		}
		if hc := s.HealthCheck; hc == nil || !slices.Equal(hc.Test, []string{"CMD", "/lockd", "healthcheck"}) {
			t.Errorf("%s healthcheck %+v, want the exec-form lockd healthcheck", name, hc)
		}
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= 10*time.Second {
			t.Errorf("%s stop_grace_period %v, want above the 10s SHUTDOWN_TIMEOUT", name, s.StopGracePeriod)
		}
	}
	if web2 := service(t, p, "web-2"); web2.Build != nil || web2.PullPolicy != types.PullPolicyNever {
		t.Errorf("web-2 should reuse web-1's image: build %+v, pull_policy %q", web2.Build, web2.PullPolicy)
	}
}

func TestComposeRedis(t *testing.T) {
	p := loadProject(t)
	r := service(t, p, "redis")
	cmd := strings.Join(r.Command, " ")
	if !strings.Contains(cmd, "--requirepass password") {
		t.Errorf("redis command %q does not enforce the .env password", cmd)
	}
	if env(r, "REDISCLI_AUTH") != "password" {
		t.Errorf("REDISCLI_AUTH = %q, want the password for the healthcheck", env(r, "REDISCLI_AUTH"))
	}
	if r.HealthCheck == nil || len(r.HealthCheck.Test) != 2 || r.HealthCheck.Test[0] != "CMD-SHELL" {
		t.Fatalf("redis healthcheck %+v, want a CMD-SHELL test", r.HealthCheck)
	}
	if !slices.ContainsFunc(r.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == "/data" && v.Type == "volume" }) {
		t.Errorf("redis volumes %+v, want a named volume on /data", r.Volumes)
	}
	checkHealthcheckRejectsNOAUTH(t, r.HealthCheck.Test[1])
}

// checkHealthcheckRejectsNOAUTH runs the compose healthcheck command against
// a real password-protected redis-server: it must pass with the password and
// fail without it (a bare "redis-cli ping" prints NOAUTH and exits 0).
func checkHealthcheckRejectsNOAUTH(t *testing.T, test string) {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{Password: "password"})
	runHealthcheck(t, test, srv.Port)
}

// runHealthcheck runs the healthcheck command test against the
// password-protected server on port, as checkHealthcheckRejectsNOAUTH says.
func runHealthcheck(t *testing.T, test string, port int) {
	t.Helper()
	real, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli: %v (%s)", err, redistest.InstallHint)
	}
	// The check talks to localhost:6379 (a sentinel's: -p 26379) inside the
	// container; here a redis-cli shim first on PATH drops any -p and
	// points it at the test server instead.
	bin := t.TempDir()
	shim := "#!/bin/sh\nfor a; do\n\tshift\n\tif [ -n \"${skip:-}\" ]; then skip=; continue; fi\n" +
		"\tif [ \"$a\" = -p ]; then skip=1; continue; fi\n\tset -- \"$@\" \"$a\"\ndone\n" +
		"exec " + real + " -p " + strconv.Itoa(port) + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "redis-cli"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		auth    string
		healthy bool
	}{{"password", true}, {"", false}, {"wrong", false}} {
		cmd := exec.Command("sh", "-c", test)
		cmd.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "REDISCLI_AUTH=" + tt.auth}
		err := cmd.Run()
		if (err == nil) != tt.healthy {
			t.Errorf("healthcheck with REDISCLI_AUTH=%q: err=%v, want healthy=%v", tt.auth, err, tt.healthy)
		}
	}
}

func TestComposeRedisInsight(t *testing.T) {
	p := loadProject(t)
	ri := service(t, p, "redis-insight")
	if !strings.HasPrefix(ri.Image, "redis/redisinsight") {
		t.Errorf("image %q, want redis/redisinsight (v2; port 5540)", ri.Image)
	}
	if len(ri.Ports) != 1 || ri.Ports[0].Published != "5540" || ri.Ports[0].Target != 5540 {
		t.Errorf("ports %+v, want 5540->5540", ri.Ports)
	}
	for k, want := range map[string]string{"RI_REDIS_HOST": "redis", "RI_REDIS_PORT": "6379", "RI_REDIS_PASSWORD": "password", "RI_REDIS_DB": "1"} {
		if got := env(ri, k); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if dep, ok := ri.DependsOn["redis"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("depends_on %+v, want redis service_healthy", ri.DependsOn)
	}
}

// TestDotEnvHoldsOnlyComposeSettings: .env is read by a locally started
// lockd too, so it must not change anything beyond the Redis credentials.
func TestDotEnvHoldsOnlyComposeSettings(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), ".env"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, strings.SplitN(line, "=", 2)[0])
	}
	slices.Sort(keys)
	if want := []string{"REDIS_DB", "REDIS_PASSWORD"}; !slices.Equal(keys, want) {
		t.Fatalf(".env sets %v, want only %v", keys, want)
	}
}

func TestDockerfile(t *testing.T) {
	dir := root(t)
	b, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) != 2 {
		t.Fatalf("want a two-stage build, got FROM lines %v", froms)
	}
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(gomod))
	if goLine == nil || froms[0][1] != "golang:"+goLine[1] {
		t.Errorf("build stage %q should be golang:<go.mod's version %v>", froms[0][1], goLine)
	}
	if !strings.HasPrefix(froms[1][1], "gcr.io/distroless/static") || !strings.HasSuffix(froms[1][1], ":nonroot") {
		t.Errorf("final stage %q, want distroless static :nonroot", froms[1][1])
	}
	for _, want := range []string{"CGO_ENABLED=0", "USER nonroot:nonroot", `ENTRYPOINT ["/lockd"]`, "./cmd/lockd",
		`CMD ["/lockd", "healthcheck"]`} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	ignore, err := os.ReadFile(filepath.Join(dir, ".dockerignore"))
	if err != nil || !regexp.MustCompile(`(?m)^\.env$`).Match(ignore) {
		t.Errorf(".dockerignore must keep .env out of the image (err %v)", err)
	}
}

// TestComposeRedlock loads the quorum override on top of the compose file,
// as `docker compose -f docker-compose.yml -f docker-compose.redlock.yml up`
// does, and checks that both replicas lock over three independent,
// password-protected, fsync-always masters, and that lockd accepts the
// environment it gets.
func TestComposeRedlock(t *testing.T) {
	p := loadProject(t, "docker-compose.redlock.yml")
	got := p.ServiceNames()
	slices.Sort(got)
	if want := []string{"redis", "redis-2", "redis-3", "redis-insight", "web-1", "web-2"}; !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	nodes := []string{"redis", "redis-2", "redis-3"}
	volumes := map[string]bool{}
	for _, name := range nodes {
		r := service(t, p, name)
		cmd := strings.Join(r.Command, " ")
		for _, want := range []string{"--requirepass password", "--appendfsync always", "--maxmemory-policy noeviction"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("%s command %q lacks %s", name, cmd, want)
			}
		}
		if r.HealthCheck == nil || len(r.HealthCheck.Test) != 2 {
			t.Fatalf("%s healthcheck %+v", name, r.HealthCheck)
		}
		checkHealthcheckRejectsNOAUTH(t, r.HealthCheck.Test[1])
		for _, v := range r.Volumes {
			if v.Target == "/data" {
				volumes[v.Source] = true
			}
		}
	}
	if len(volumes) != 3 {
		t.Errorf("data volumes %v, want one per node", volumes)
	}
	for name, port := range map[string]string{"web-1": "8081", "web-2": "8082"} {
		s := service(t, p, name)
		if len(s.Ports) != 1 || s.Ports[0].Published != port {
			t.Errorf("%s ports %+v", name, s.Ports)
		}
		for _, n := range nodes {
			if dep, ok := s.DependsOn[n]; !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s does not wait for %s to be healthy: %+v", name, n, s.DependsOn)
			}
		}
		cfg, err := config.Load(func(k string) string { return env(s, k) })
		if err != nil {
			t.Fatalf("%s: lockd refuses its environment: %v", name, err)
		}
		if got := cfg.Addrs(); got != "redis:6379,redis-2:6379,redis-3:6379" {
			t.Errorf("%s locks over %s", name, got)
		}
		if cfg.Redis[0].Password != "password" || cfg.Redis[0].DB != 1 {
			t.Errorf("%s node options %+v", name, cfg.Redis[0])
		}
	}
}
