package deploy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/go-distributed-lock/go-distributed-lock/internal/config"
	"github.com/go-distributed-lock/go-distributed-lock/internal/httpapi"
	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/metrics"
)

// kubeDir is where the kustomizations live, relative to the repository.
const kubeDir = "deploy/kubernetes"

// shutdownFallback is the time lockd's shutdown (cmd/lockd/run.go) gives
// cancelled requests past SHUTDOWN_TIMEOUT, to release their locks.
const shutdownFallback = 5 * time.Second

// lockdName is the name of lockd's Deployment, Service and ConfigMap.
const lockdName = "lockd"

// manifests are the objects one kustomization renders to, each decoded
// into its API type.
type manifests struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	pdbs            []*policyv1.PodDisruptionBudget
	netpols         []*networkingv1.NetworkPolicy
	serviceMonitors []*monitoringv1.ServiceMonitor
	rules           []*monitoringv1.PrometheusRule
}

// kinds maps each apiVersion and kind the manifests may hold to where its
// decoded objects go. Anything else is an error: a kind no test looks at
// would go unchecked.
var kinds = map[string]func(m *manifests, y []byte) error{
	"apps/v1/Deployment":                      decodeInto(func(m *manifests) *[]*appsv1.Deployment { return &m.deployments }),
	"v1/Service":                              decodeInto(func(m *manifests) *[]*corev1.Service { return &m.services }),
	"v1/ConfigMap":                            decodeInto(func(m *manifests) *[]*corev1.ConfigMap { return &m.configMaps }),
	"policy/v1/PodDisruptionBudget":           decodeInto(func(m *manifests) *[]*policyv1.PodDisruptionBudget { return &m.pdbs }),
	"networking.k8s.io/v1/NetworkPolicy":      decodeInto(func(m *manifests) *[]*networkingv1.NetworkPolicy { return &m.netpols }),
	"monitoring.coreos.com/v1/ServiceMonitor": decodeInto(func(m *manifests) *[]*monitoringv1.ServiceMonitor { return &m.serviceMonitors }),
	"monitoring.coreos.com/v1/PrometheusRule": decodeInto(func(m *manifests) *[]*monitoringv1.PrometheusRule { return &m.rules }),
}

// decodeInto decodes an object strictly, a field its type does not have
// being an error (a misspelt or misplaced field would otherwise vanish
// silently, as the API server's non-strict decoding also drops it), and
// appends it to the slice field picks.
func decodeInto[T any](field func(*manifests) *[]*T) func(*manifests, []byte) error {
	return func(m *manifests, y []byte) error {
		obj := new(T)
		if err := yaml.UnmarshalStrict(y, obj); err != nil {
			return err
		}
		*field(m) = append(*field(m), obj)
		return nil
	}
}

// kustomizations are the ones the tests render: the base, each overlay,
// and each overlay with the prometheus Component (which cannot be built on
// its own), by directory relative to kubeDir.
var kustomizations = []struct {
	dir        string
	components []string
}{
	{dir: "base"},
	{dir: "overlays/single-redis"},
	{dir: "overlays/redis-cluster"},
	{dir: "overlays/redis-sentinel"},
	{dir: "overlays/single-redis", components: []string{"overlays/prometheus"}},
	{dir: "overlays/redis-cluster", components: []string{"overlays/prometheus"}},
	{dir: "overlays/redis-sentinel", components: []string{"overlays/prometheus"}},
	{dir: "overlays/single-redis", components: []string{"overlays/tracing"}},
	{dir: "overlays/redis-sentinel", components: []string{"overlays/prometheus", "overlays/tracing"}},
}

// render builds the kustomization at dir, plus components, with kustomize's
// own Go API (what kubectl apply -k runs), and decodes every object.
func render(t *testing.T, dir string, components ...string) *manifests {
	t.Helper()
	base := filepath.Join(root(t), kubeDir)
	target := filepath.Join(base, dir)
	if len(components) > 0 {
		// An overlay of the overlay, as a user would write one.
		// Kustomize takes other kustomizations by relative path only.
		target = t.TempDir()
		rel := func(d string) string {
			r, err := filepath.Rel(target, filepath.Join(base, d))
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " + rel(dir) + "\ncomponents:\n"
		for _, c := range components {
			k += "  - " + rel(c) + "\n"
		}
		if err := os.WriteFile(filepath.Join(target, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), target)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	m := &manifests{}
	for _, r := range resources.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		key := r.GetApiVersion() + "/" + r.GetKind()
		decode, ok := kinds[key]
		if !ok {
			t.Fatalf("%s renders %s %s, which no test checks", dir, key, r.GetName())
		}
		if err := decode(m, y); err != nil {
			t.Fatalf("%s: %s %s does not decode strictly: %v", dir, key, r.GetName(), err)
		}
	}
	return m
}

// byName is the object called name in objs, or nil.
func byName[T interface{ GetName() string }](objs []T, name string) T {
	var none T
	for _, o := range objs {
		if o.GetName() == name {
			return o
		}
	}
	return none
}

// lockd is lockd's container in lockd's Deployment.
func (m *manifests) lockd() (*appsv1.Deployment, *corev1.Container, error) {
	d := byName(m.deployments, lockdName)
	if d == nil {
		return nil, nil, fmt.Errorf("no Deployment %s", lockdName)
	}
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == lockdName {
			return d, c, nil
		}
	}
	return nil, nil, fmt.Errorf("Deployment %s has no container %s", lockdName, lockdName)
}

// kubeCheck looks at one kustomization's objects and returns what is
// wrong with them. Checks return problems rather than fail the test, so
// that TestKubernetesChecksCatch can show each one failing.
type kubeCheck func(t *testing.T, m *manifests) []string

// kubeChecks are every check TestKubernetesManifests runs, by name.
var kubeChecks = map[string]kubeCheck{
	"settings":        checkSettings,
	"probes":          checkProbes,
	"grace period":    checkGrace,
	"security":        checkSecurity,
	"selectors":       checkSelectors,
	"network policy":  checkNetworkPolicy,
	"alert metrics":   checkAlertMetrics,
	"service monitor": checkServiceMonitor,
}

// TestKubernetesManifests renders the base and every overlay and runs every
// check on each.
func TestKubernetesManifests(t *testing.T) {
	for _, k := range kustomizations {
		name := strings.Join(append([]string{k.dir}, k.components...), "+")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := render(t, k.dir, k.components...)
			if slices.Contains(k.components, "overlays/prometheus") && (len(m.serviceMonitors) == 0 || len(m.rules) == 0) {
				t.Errorf("with %v: %d ServiceMonitors and %d PrometheusRules, want both", k.components, len(m.serviceMonitors), len(m.rules))
			}
			for _, check := range slices.Sorted(mapKeys(kubeChecks)) {
				for _, p := range kubeChecks[check](t, m) {
					t.Errorf("%s: %s", check, p)
				}
			}
		})
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// lockdEnv is the environment lockd's container gets: the image's ENV
// (Dockerfile), the ConfigMaps of envFrom, then env, which wins. Secret
// values are test values, and API_TOKENS_FILE, which must be in a mounted
// Secret, is a file of the test's with a token in it. It also returns
// every variable name the manifests set.
func lockdEnv(t *testing.T, m *manifests) (map[string]string, []string, []string) {
	t.Helper()
	var problems, names []string
	env := map[string]string{}
	b, err := os.ReadFile(filepath.Join(root(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range regexp.MustCompile(`(?m)^ENV (.+)$`).FindAllStringSubmatch(string(b), -1) {
		for _, kv := range strings.Fields(line[1]) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	d, c, err := m.lockd()
	if err != nil {
		return nil, nil, []string{err.Error()}
	}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil || from.Prefix != "" {
			problems = append(problems, fmt.Sprintf("envFrom %+v: only ConfigMaps without prefix are checked", from))
			continue
		}
		cm := byName(m.configMaps, from.ConfigMapRef.Name)
		if cm == nil {
			problems = append(problems, "envFrom names ConfigMap "+from.ConfigMapRef.Name+", which is not rendered")
			continue
		}
		for k, v := range cm.Data {
			env[k] = v
			names = append(names, k)
		}
	}
	for _, e := range c.Env {
		names = append(names, e.Name)
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "test-" + e.ValueFrom.SecretKeyRef.Key
		default:
			problems = append(problems, e.Name+": only values and Secret keys are checked")
		}
	}
	if f := env["API_TOKENS_FILE"]; f != "" {
		if !inSecretMount(d, c, f) {
			problems = append(problems, "API_TOKENS_FILE "+f+" is not a key of a read-only Secret volume")
		}
		tokens := filepath.Join(t.TempDir(), "api-tokens")
		if err := os.WriteFile(tokens, []byte("# test\nkube-test-token-0123456789\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env["API_TOKENS_FILE"] = tokens
	}
	return env, names, problems
}

// inSecretMount reports whether file is one of the keys of a Secret volume
// that c mounts read-only.
func inSecretMount(d *appsv1.Deployment, c *corev1.Container, file string) bool {
	for _, vm := range c.VolumeMounts {
		if !vm.ReadOnly || filepath.Dir(file) != filepath.Clean(vm.MountPath) {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			for _, it := range v.Secret.Items {
				if it.Path == filepath.Base(file) {
					return true
				}
			}
		}
	}
	return false
}

// loadConfig is config.Load over lockd's rendered environment. It also
// returns the names of the variables the manifests set.
func loadConfig(t *testing.T, m *manifests) (config.Config, []string, []string) {
	t.Helper()
	env, names, problems := lockdEnv(t, m)
	if env == nil {
		return config.Config{}, nil, problems
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		problems = append(problems, "config.Load refuses the rendered settings: "+err.Error())
	}
	return cfg, names, problems
}

// lockdConfig is lockd's Deployment and container, and config.Load's
// answer to its settings, for the checks that compare the two.
func lockdConfig(t *testing.T, m *manifests) (*appsv1.Deployment, *corev1.Container, config.Config, []string) {
	t.Helper()
	d, c, err := m.lockd()
	if err != nil {
		return nil, nil, config.Config{}, []string{err.Error()}
	}
	cfg, _, problems := loadConfig(t, m)
	return d, c, cfg, problems
}

// checkSettings: lockd's container sets only variables config.Load reads
// (it ignores the others, so a typo would pass unseen), and config.Load
// accepts their values.
func checkSettings(t *testing.T, m *manifests) []string {
	_, names, problems := loadConfig(t, m)
	known := configVariables(t)
	for _, n := range names {
		if !slices.Contains(known, n) {
			problems = append(problems, n+" is set, but config.Load does not read it")
		}
	}
	return problems
}

// probeHandler is lockd's real HTTP handler, for asking it the probes'
// paths, made once for the test binary. Its Redis address is never
// dialled: the probes must not need Redis to answer.
var probeHandler = sync.OnceValues(func() (http.Handler, error) {
	gin.SetMode(gin.ReleaseMode) // as main does; no route listing in the test log
	locks := lock.New(lock.Config{Nodes: []*redis.Options{{Addr: "127.0.0.1:1"}}, Logger: slog.New(slog.DiscardHandler)})
	return httpapi.NewHandler(slog.New(slog.DiscardHandler), locks, httpapi.Options{
		LockExpiry: 30 * time.Second, CriticalSection: 30 * time.Second, Metrics: metrics.New(),
	})
})

// askLockd answers GET path from lockd's handler and returns the status.
func askLockd(t *testing.T, path string) int {
	t.Helper()
	h, err := probeHandler()
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, path, nil))
	return rec.Code
}

// portOf resolves a probe's or Service's port, a number or a name, to the
// container port it means, or 0.
func portOf(c *corev1.Container, p intstr.IntOrString) int32 {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && p.StrVal == cp.Name) || (p.Type == intstr.Int && p.IntVal == cp.ContainerPort) {
			return cp.ContainerPort
		}
	}
	return 0
}

// checkProbes: the liveness probe is /healthz and the readiness probe
// /readyz?exclude=redis, both answered 200 by lockd's own handler with no
// Redis at all, on a port lockd listens on (PORT).
func checkProbes(t *testing.T, m *manifests) []string {
	_, c, cfg, problems := lockdConfig(t, m)
	if len(problems) > 0 {
		return problems
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || int(c.Ports[0].ContainerPort) != cfg.Port {
		problems = append(problems, fmt.Sprintf("container ports %+v, want one named http on PORT (%d)", c.Ports, cfg.Port))
	}
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{
		{"livenessProbe", c.LivenessProbe, "/healthz"},
		{"readinessProbe", c.ReadinessProbe, "/readyz?exclude=redis"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			problems = append(problems, p.what+" is not an HTTP GET")
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path {
			problems = append(problems, fmt.Sprintf("%s asks %s, want %s", p.what, g.Path, p.path))
		}
		if got := portOf(c, g.Port); int(got) != cfg.Port {
			problems = append(problems, fmt.Sprintf("%s asks port %s, which is not PORT (%d)", p.what, g.Port.String(), cfg.Port))
		}
		if code := askLockd(t, g.Path); code != http.StatusOK {
			problems = append(problems, fmt.Sprintf("%s: lockd answers GET %s with %d without Redis, want 200", p.what, g.Path, code))
		}
	}
	if c.StartupProbe != nil && c.StartupProbe.HTTPGet != nil && c.StartupProbe.HTTPGet.Path != "/healthz" {
		problems = append(problems, "startupProbe asks "+c.StartupProbe.HTTPGet.Path+", want /healthz")
	}
	return problems
}

// checkGrace: the kubelet's SIGKILL comes after the longest shutdown lockd
// can take: the preStop sleep, SHUTDOWN_TIMEOUT, then the fallback for
// cancelled requests. The pause is a sleep action: the image has no shell
// to exec sleep with.
func checkGrace(t *testing.T, m *manifests) []string {
	d, c, cfg, problems := lockdConfig(t, m)
	if len(problems) > 0 {
		return problems
	}
	var pause time.Duration
	switch l := c.Lifecycle; {
	case l == nil || l.PreStop == nil || l.PreStop.Sleep == nil || l.PreStop.Sleep.Seconds < 1:
		problems = append(problems, "no preStop sleep: endpoints would still send traffic while lockd stops")
	case l.PreStop.Exec != nil || l.PreStop.HTTPGet != nil:
		problems = append(problems, "preStop must be only a sleep")
	default:
		pause = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
	}
	grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
	need := pause + cfg.ShutdownTimeout + shutdownFallback
	if grace == nil || time.Duration(*grace)*time.Second <= need {
		problems = append(problems, fmt.Sprintf("terminationGracePeriodSeconds %v is not above preStop %v + SHUTDOWN_TIMEOUT %v + %v",
			ptrString(grace), pause, cfg.ShutdownTimeout, shutdownFallback))
	}
	return problems
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// checkSecurity: every container of every Deployment (Redis's too) runs
// as a non-root user and group, on a read-only root, without privilege
// escalation or capabilities, under the runtime's seccomp profile; lockd's
// Deployment also keeps two replicas apart and sets its resources.
func checkSecurity(_ *testing.T, m *manifests) []string {
	var problems []string
	for _, d := range m.deployments {
		pod := d.Spec.Template.Spec
		psc := pod.SecurityContext
		if psc == nil {
			psc = &corev1.PodSecurityContext{}
		}
		for _, c := range pod.Containers {
			where := d.Name + "/" + c.Name
			sc := c.SecurityContext
			if sc == nil {
				sc = &corev1.SecurityContext{}
			}
			user, group, nonRoot := cmp(sc.RunAsUser, psc.RunAsUser), cmp(sc.RunAsGroup, psc.RunAsGroup), cmp(sc.RunAsNonRoot, psc.RunAsNonRoot)
			seccomp := cmp(sc.SeccompProfile, psc.SeccompProfile)
			switch {
			case nonRoot == nil || !*nonRoot:
				problems = append(problems, where+": runAsNonRoot is not true")
			case user == nil || *user == 0 || group == nil || *group == 0:
				problems = append(problems, where+": runAsUser and runAsGroup must be set and not 0")
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				problems = append(problems, where+": readOnlyRootFilesystem is not true")
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				problems = append(problems, where+": allowPrivilegeEscalation is not false")
			case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
				problems = append(problems, where+": capabilities must drop ALL and add none")
			case seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault:
				problems = append(problems, where+": seccompProfile is not RuntimeDefault")
			case c.Resources.Requests.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero():
				problems = append(problems, where+": needs cpu and memory requests and a memory limit")
			}
		}
	}
	d, _, err := m.lockd()
	if err != nil {
		return append(problems, err.Error())
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		problems = append(problems, "lockd runs "+ptrString(d.Spec.Replicas)+" replicas, want at least 2")
	}
	aff := d.Spec.Template.Spec.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 ||
		aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != corev1.LabelHostname ||
		!selects(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector, d.Spec.Template.Labels) {
		problems = append(problems, "lockd has no preferred pod anti-affinity by hostname against its own pods")
	}
	return problems
}

// cmp is the container's setting when set, else the pod's.
func cmp[T any](container, pod *T) *T {
	if container != nil {
		return container
	}
	return pod
}

// selects reports whether sel, a non-empty selector, matches set.
func selects(sel *metav1.LabelSelector, set map[string]string) bool {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(set))
}

// checkSelectors: the Deployment's own selector, the PodDisruptionBudget's
// and the Service's match lockd's pods, and the Service sends its port to
// the container's.
func checkSelectors(_ *testing.T, m *manifests) []string {
	d, c, err := m.lockd()
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	pods := d.Spec.Template.Labels
	if !selects(d.Spec.Selector, pods) {
		problems = append(problems, "the Deployment's selector does not match its pod template")
	}
	var pdbs int
	for _, p := range m.pdbs {
		if selects(p.Spec.Selector, pods) {
			pdbs++
			if p.Spec.MinAvailable == nil && p.Spec.MaxUnavailable == nil {
				problems = append(problems, "PodDisruptionBudget "+p.Name+" sets neither minAvailable nor maxUnavailable")
			}
		}
	}
	if pdbs != 1 {
		problems = append(problems, fmt.Sprintf("%d PodDisruptionBudgets select lockd's pods, want 1", pdbs))
	}
	svc := byName(m.services, lockdName)
	if svc == nil {
		return append(problems, "no Service "+lockdName)
	}
	if !selects(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, pods) {
		problems = append(problems, "the Service's selector does not match lockd's pods")
	}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.Type != intstr.String || portOf(c, p.TargetPort) == 0 {
			problems = append(problems, fmt.Sprintf("Service port %s targets %s, want a named container port", p.Name, p.TargetPort.String()))
		}
	}
	return problems
}

// redisPorts are the TCP ports lockd connects to with cfg: each configured
// address's; in Sentinel mode also 6379, the port of the master and
// replicas the sentinels name (the manifests assume Redis's default).
func redisPorts(cfg config.Config) []int32 {
	var addrs []string
	for _, o := range cfg.Redis {
		addrs = append(addrs, o.Addr)
	}
	if cfg.RedisCluster != nil {
		addrs = append(addrs, cfg.RedisCluster.Addrs...)
	}
	var ports []int32
	if cfg.RedisSentinel != nil {
		addrs = append(addrs, cfg.RedisSentinel.SentinelAddrs...)
		ports = append(ports, 6379)
	}
	for _, a := range addrs {
		p, _ := strconv.Atoi(a[strings.LastIndexByte(a, ':')+1:])
		ports = append(ports, int32(p))
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// egressPorts are the TCP ports lockd connects to with cfg: Redis's, and
// the trace collector's when tracing is on.
func egressPorts(cfg config.Config) []int32 {
	ports := redisPorts(cfg)
	if cfg.Tracing.Enabled {
		port := int32(4318) // the SDK's default
		if u, err := url.Parse(cfg.Tracing.Endpoint); err == nil && u.Port() != "" {
			p, _ := strconv.Atoi(u.Port())
			port = int32(p)
		}
		ports = append(ports, port)
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// checkNetworkPolicy: lockd's pods are selected by a policy that lets in
// only its HTTP port, and lets out only DNS, to the cluster's DNS pods,
// and the TCP ports of the Redis the overlay configures (and of the trace
// collector, with tracing on), no more, no less.
func checkNetworkPolicy(t *testing.T, m *manifests) []string {
	d, c, cfg, problems := lockdConfig(t, m)
	if len(problems) > 0 {
		return problems
	}
	var egress []int32
	var dns, policed bool
	for _, np := range m.netpols {
		if !selects(&np.Spec.PodSelector, d.Spec.Template.Labels) {
			continue
		}
		policed = policed || slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		for _, in := range np.Spec.Ingress {
			if len(in.Ports) == 0 {
				problems = append(problems, np.Name+": an ingress rule opens every port")
			}
			for _, p := range in.Ports {
				if p.Port == nil || portOf(c, *p.Port) == 0 {
					problems = append(problems, fmt.Sprintf("%s: ingress port %s is not lockd's", np.Name, ptrString(p.Port)))
				}
			}
		}
		for _, out := range np.Spec.Egress {
			if isDNS(out) {
				dns = true
				continue
			}
			if len(out.Ports) == 0 {
				problems = append(problems, np.Name+": an egress rule opens every port")
			}
			for _, p := range out.Ports {
				if p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP || p.Port == nil || p.Port.Type != intstr.Int {
					problems = append(problems, fmt.Sprintf("%s: egress port %+v is not a TCP port number", np.Name, p))
					continue
				}
				egress = append(egress, p.Port.IntVal)
			}
		}
	}
	if !policed || !dns {
		problems = append(problems, "no NetworkPolicy limits lockd's egress with a rule for DNS to kube-dns")
	}
	slices.Sort(egress)
	if want := egressPorts(cfg); !slices.Equal(slices.Compact(egress), want) {
		problems = append(problems, fmt.Sprintf("egress TCP ports %v, but the configured Redis and trace collector are on %v", egress, want))
	}
	return problems
}

// isDNS reports whether rule lets out port 53, UDP and TCP, and only to
// the kube-dns pods of kube-system: a selector with any other label (one
// a transformer added) would match no DNS pod, and names would not resolve.
func isDNS(rule networkingv1.NetworkPolicyEgressRule) bool {
	protocols := map[corev1.Protocol]bool{}
	for _, p := range rule.Ports {
		if p.Port == nil || p.Port.IntValue() != 53 || p.Protocol == nil {
			return false
		}
		protocols[*p.Protocol] = true
	}
	if !protocols[corev1.ProtocolUDP] || !protocols[corev1.ProtocolTCP] || len(rule.To) == 0 {
		return false
	}
	for _, to := range rule.To {
		if to.NamespaceSelector == nil || to.PodSelector == nil ||
			!maps(to.NamespaceSelector.MatchLabels, map[string]string{"kubernetes.io/metadata.name": "kube-system"}) ||
			!maps(to.PodSelector.MatchLabels, map[string]string{"k8s-app": "kube-dns"}) {
			return false
		}
	}
	return true
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// metricNames are the series names lockd's registry serves, histograms'
// _bucket, _sum and _count included, with the scrape-time Redis gauges
// and every labelled family made to show.
func metricNames(t *testing.T) []string {
	t.Helper()
	m := metrics.New()
	m.WatchRedis(upHealth{})
	m.HTTPRequest("/healthz", http.MethodGet, http.StatusOK, time.Millisecond)
	m.RedisHook("0")
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			names = append(names, mf.GetName()+"_bucket", mf.GetName()+"_sum", mf.GetName()+"_count")
		}
	}
	return names
}

// upHealth is a Redis that is always fine, for metricNames.
type upHealth struct{}

func (upHealth) Health(context.Context, time.Duration) (bool, []lock.NodeHealth) {
	return true, []lock.NodeHealth{{Addr: "redis:6379", OK: true}}
}

// lockdMetric finds lockd's metric names in a PromQL expression.
var lockdMetric = regexp.MustCompile(`\blockd_[a-z0-9_]+\b`)

// checkAlertMetrics: every alert rule reads at least one of lockd's
// metrics, and only ones lockd serves: a renamed metric would leave an
// alert that never fires.
func checkAlertMetrics(t *testing.T, m *manifests) []string {
	if len(m.rules) == 0 {
		return nil
	}
	known := metricNames(t)
	var problems []string
	for _, pr := range m.rules {
		for _, g := range pr.Spec.Groups {
			for _, r := range g.Rules {
				expr := r.Expr.String()
				used := lockdMetric.FindAllString(expr, -1)
				if len(used) == 0 {
					problems = append(problems, fmt.Sprintf("%s: %q reads none of lockd's metrics", r.Alert, expr))
				}
				for _, name := range used {
					if !slices.Contains(known, name) {
						problems = append(problems, fmt.Sprintf("%s: %s is not a metric lockd serves", r.Alert, name))
					}
				}
				if r.Alert == "" || r.Labels["severity"] == "" {
					problems = append(problems, fmt.Sprintf("rule %q needs an alert name and a severity", expr))
				}
			}
		}
	}
	return problems
}

// checkServiceMonitor: each ServiceMonitor selects lockd's Service and no
// other, and scrapes a named port of it on a path lockd serves.
func checkServiceMonitor(t *testing.T, m *manifests) []string {
	var problems []string
	for _, sm := range m.serviceMonitors {
		var selected []string
		for _, s := range m.services {
			if selects(&sm.Spec.Selector, s.Labels) {
				selected = append(selected, s.Name)
			}
		}
		if !slices.Equal(selected, []string{lockdName}) {
			problems = append(problems, fmt.Sprintf("ServiceMonitor %s selects Services %v, want only %s", sm.Name, selected, lockdName))
			continue
		}
		svc := byName(m.services, lockdName)
		for _, ep := range sm.Spec.Endpoints {
			named := slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port && ep.Port != "" })
			if !named {
				problems = append(problems, fmt.Sprintf("ServiceMonitor %s scrapes port %q, not a named port of the Service", sm.Name, ep.Port))
			}
			if code := askLockd(t, ep.Path); code != http.StatusOK {
				problems = append(problems, fmt.Sprintf("ServiceMonitor %s scrapes %s, which lockd answers %d", sm.Name, ep.Path, code))
			}
		}
	}
	return problems
}

// TestKubernetesChecksCatch breaks a rendered copy in one way per case and
// shows that the check meant for it notices, so that no check passes for
// want of looking.
func TestKubernetesChecksCatch(t *testing.T) {
	lockdOf := func(m *manifests) (*appsv1.Deployment, *corev1.Container) {
		d, c, err := m.lockd()
		if err != nil {
			t.Fatal(err)
		}
		return d, c
	}
	lockdPolicy := func(m *manifests) *networkingv1.NetworkPolicy {
		np := byName(m.netpols, lockdName)
		if np == nil {
			t.Fatal("no NetworkPolicy lockd")
		}
		return np
	}
	for _, tc := range []struct {
		name, dir, check string
		breakIt          func(m *manifests)
	}{
		{"a variable lockd does not read", "overlays/single-redis", "settings", func(m *manifests) {
			_, c := lockdOf(m)
			c.Env = append(c.Env, corev1.EnvVar{Name: "REDIS_HOST", Value: "redis"})
		}},
		{"a value config.Load refuses", "overlays/single-redis", "settings", func(m *manifests) {
			byName(m.configMaps, m.lockdConfigMap(t)).Data["SHUTDOWN_TIMEOUT"] = "soon"
		}},
		{"two Redis modes", "overlays/redis-cluster", "settings", func(m *manifests) {
			byName(m.configMaps, m.lockdConfigMap(t)).Data["REDIS_ADDR"] = "redis:6379"
		}},
		{"a token file outside the Secret", "overlays/single-redis", "settings", func(m *manifests) {
			byName(m.configMaps, m.lockdConfigMap(t)).Data["API_TOKENS_FILE"] = "/tmp/tokens"
		}},
		{"readiness on a check lockd does not know", "overlays/single-redis", "probes", func(m *manifests) {
			_, c := lockdOf(m)
			c.ReadinessProbe.HTTPGet.Path = "/readyz?exclude=reddis"
		}},
		{"liveness on another port", "overlays/single-redis", "probes", func(m *manifests) {
			_, c := lockdOf(m)
			c.LivenessProbe.HTTPGet.Port = intstr.FromInt32(9090)
		}},
		{"PORT not the container port", "overlays/single-redis", "probes", func(m *manifests) {
			byName(m.configMaps, m.lockdConfigMap(t)).Data["PORT"] = "9090"
		}},
		{"grace period within the shutdown", "overlays/single-redis", "grace period", func(m *manifests) {
			d, _ := lockdOf(m)
			grace := int64(20) // 5s + 10s + 5s: SIGKILL right at the end
			d.Spec.Template.Spec.TerminationGracePeriodSeconds = &grace
		}},
		{"longer SHUTDOWN_TIMEOUT", "overlays/single-redis", "grace period", func(m *manifests) {
			byName(m.configMaps, m.lockdConfigMap(t)).Data["SHUTDOWN_TIMEOUT"] = "30s"
		}},
		{"root user in Redis's container", "overlays/single-redis", "security", func(m *manifests) {
			root := int64(0)
			byName(m.deployments, "redis").Spec.Template.Spec.Containers[0].SecurityContext.RunAsUser = &root
		}},
		{"writable root filesystem", "overlays/single-redis", "security", func(m *manifests) {
			_, c := lockdOf(m)
			c.SecurityContext.ReadOnlyRootFilesystem = nil
		}},
		{"a budget for other pods", "overlays/single-redis", "selectors", func(m *manifests) {
			m.pdbs[0].Spec.Selector.MatchLabels["app.kubernetes.io/name"] = "redis"
		}},
		{"Service on a port number", "overlays/single-redis", "selectors", func(m *manifests) {
			byName(m.services, lockdName).Spec.Ports[0].TargetPort = intstr.FromInt32(8080)
		}},
		{"no way to the sentinels", "overlays/redis-sentinel", "network policy", func(m *manifests) {
			rule := &lockdPolicy(m).Spec.Egress[1]
			rule.Ports = rule.Ports[:1]
		}},
		{"a port no Redis listens on", "overlays/single-redis", "network policy", func(m *manifests) {
			rule := &lockdPolicy(m).Spec.Egress[1]
			port := intstr.FromInt32(6380)
			rule.Ports = append(rule.Ports, networkingv1.NetworkPolicyPort{Protocol: rule.Ports[0].Protocol, Port: &port})
		}},
		{"lockd's labels on the DNS selector", "overlays/single-redis", "network policy", func(m *manifests) {
			lockdPolicy(m).Spec.Egress[0].To[0].PodSelector.MatchLabels["app.kubernetes.io/name"] = lockdName
		}},
		{"tracing on with no way to the collector", "tracing", "network policy", func(m *manifests) {
			m.netpols = slices.DeleteFunc(m.netpols, func(np *networkingv1.NetworkPolicy) bool { return np.Name == "lockd-tracing" })
		}},
		{"a collector on a port the policy does not open", "tracing", "network policy", func(m *manifests) {
			byName(m.configMaps, m.lockdConfigMap(t)).Data["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://otel-collector.observability:4317"
		}},
		{"an OTEL variable the SDK reads, not lockd", "tracing", "settings", func(m *manifests) {
			byName(m.configMaps, m.lockdConfigMap(t)).Data["OTEL_EXPORTER_OTLP_HEADERS"] = "x-api-key=k"
		}},
		{"an alert on a metric lockd does not serve", "prometheus", "alert metrics", func(m *manifests) {
			m.rules[0].Spec.Groups[0].Rules[0].Expr = intstr.FromString("lockd_redis_up == 0")
		}},
		{"a scrape of a path lockd does not serve", "prometheus", "service monitor", func(m *manifests) {
			m.serviceMonitors[0].Spec.Endpoints[0].Path = "/metric"
		}},
		{"a ServiceMonitor that also selects Redis", "prometheus", "service monitor", func(m *manifests) {
			m.serviceMonitors[0].Spec.Selector.MatchLabels = map[string]string{"app.kubernetes.io/part-of": "go-distributed-lock"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var m *manifests
			switch tc.dir {
			case "prometheus", "tracing":
				m = render(t, "overlays/single-redis", "overlays/"+tc.dir)
			default:
				m = render(t, tc.dir)
			}
			tc.breakIt(m)
			problems := kubeChecks[tc.check](t, m)
			if len(problems) == 0 {
				t.Fatalf("the %s check found nothing wrong", tc.check)
			}
			t.Logf("%s: %s", tc.check, strings.Join(problems, "; "))
		})
	}
}

// lockdConfigMap is the name of the ConfigMap lockd's envFrom names (the
// generator adds a hash to lockd-config).
func (m *manifests) lockdConfigMap(t *testing.T) string {
	t.Helper()
	_, c, err := m.lockd()
	if err != nil || len(c.EnvFrom) == 0 || c.EnvFrom[0].ConfigMapRef == nil {
		t.Fatalf("lockd takes no ConfigMap: %v", err)
	}
	return c.EnvFrom[0].ConfigMapRef.Name
}

// TestStrictDecoding: a field the API type does not have is an error, not
// a field silently dropped.
func TestStrictDecoding(t *testing.T) {
	for key, y := range map[string]string{
		"apps/v1/Deployment":                      "metadata: {name: lockd}\nspec: {replica: 2}\n",
		"networking.k8s.io/v1/NetworkPolicy":      "spec: {podSelector: {}, egres: []}\n",
		"monitoring.coreos.com/v1/PrometheusRule": "spec: {groups: [{name: a, rules: [{alert: A, expression: up}]}]}\n",
	} {
		if err := kinds[key](&manifests{}, []byte(y)); err == nil {
			t.Errorf("%s with an unknown field decoded without error", key)
		}
	}
}
