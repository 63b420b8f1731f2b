package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// scenario is one part of the benchmark. It adds its tables and notes to
// the report; an error (a safety violation among them) fails the run.
type scenario struct {
	name string
	run  func(b *bench) (section, error)
}

var scenarios = []scenario{
	{"cycle", cycleScenario},
	{"handoff", handoffScenario},
	{"takeover", takeoverScenario},
	{"quorum", quorumScenario},
	{"shards", shardsScenario},
	{"demo", demoScenario},
	{"scale", scaleScenario},
	{"memory", memoryScenario},
	{"degraded", degradedScenario},
	{"kinds", kindsScenario},
	// Last: the current lockd goes on checking expiries for a while after.
	{"expiry", expiryScenario},
}

// section is one scenario's part of the report.
type section struct {
	title  string
	tables []*table
	// shows is the "what this shows" paragraph, with the targets met or
	// missed and the figures. explained is set where a missed target has
	// a profile finding: the report then points to it. The findings are
	// prose about one machine's profile, written by hand in the kept part
	// of doc/BENCHMARKS.md, not here.
	shows     string
	explained bool
}

// bench holds what every scenario shares.
type bench struct {
	ctx    context.Context
	smoke  bool
	reps   int
	lockd  string
	naive  string // the naive service's binary
	dir    string
	single *cluster // one Redis, two replicas, the naive service
	// countedSingle is single's shape behind counting proxies, started by
	// the first scenario that counts round trips (counted).
	countedSingle *cluster
	log           io.Writer
}

// counted is a cluster like single whose lockd replicas and naive service
// reach Redis through a countingProxy.
func (b *bench) counted() (*cluster, error) {
	if b.countedSingle != nil {
		return b.countedSingle, nil
	}
	c, err := startCluster(b.ctx, b.lockd, filepath.Join(b.dir, "counted"), clusterOptions{nodes: 1, counted: true, naive: b.naive})
	if err != nil {
		return nil, fmt.Errorf("counted cluster: %w", err)
	}
	b.countedSingle = c
	return c, nil
}

func (b *bench) logf(format string, args ...any) { fmt.Fprintf(b.log, format+"\n", args...) }

// scaled is d in a full run and a tenth of it, at least 50 ms, in a smoke
// run, which only checks that every path works.
func (b *bench) scaled(d time.Duration) time.Duration {
	if b.smoke {
		return max(d/10, 50*time.Millisecond)
	}
	return d
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lockbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	smoke := fs.Bool("smoke", false, "about a second per scenario: check that the tool works, measure nothing")
	out := fs.String("out", "", "rewrite this markdown file with the report (e.g. doc/BENCHMARKS.md)")
	reps := fs.Int("reps", 3, "interleaved repetitions of every measurement; figures are their median")
	list := fs.String("scenarios", "", "comma-separated scenarios to run (default all: "+names()+")")
	lockdBin := fs.String("lockd", "", "lockd binary to run (default: build ./cmd/lockd into a temporary directory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *reps < 1 {
		return fmt.Errorf("-reps wants at least 1, got %d", *reps)
	}
	if *smoke {
		*reps = 1
	}
	chosen, err := choose(*list)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return errors.New("redis-server not found on PATH: install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)")
	}
	dir, err := os.MkdirTemp("", "lockbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	if *lockdBin == "" {
		*lockdBin = filepath.Join(dir, "lockd")
		if err := goBuild(ctx, *lockdBin, "./cmd/lockd", stderr); err != nil {
			return err
		}
	} else if _, err := os.Stat(*lockdBin); err != nil {
		return fmt.Errorf("lockd binary: %w (build it with: make build)", err)
	}
	naiveBin := filepath.Join(dir, "naive")
	if err := goBuild(ctx, naiveBin, "./cmd/lockbench/naive", stderr); err != nil {
		return err
	}

	// Thousands of waiters in the scale scenario need that many requests
	// waiting per replica.
	single, err := startCluster(ctx, *lockdBin, filepath.Join(dir, "single"),
		clusterOptions{nodes: 1, env: []string{"MAX_WAITERS=20000"}, naive: naiveBin})
	if err != nil {
		return err
	}
	defer single.stop()

	b := &bench{ctx: ctx, smoke: *smoke, reps: *reps, lockd: *lockdBin, naive: naiveBin, dir: dir, single: single, log: stderr}
	defer func() {
		if b.countedSingle != nil {
			b.countedSingle.stop()
		}
	}()
	started := time.Now()
	var sections []section
	for _, s := range chosen {
		t0 := time.Now()
		b.logf("lockbench: %s ...", s.name)
		sec, err := s.run(b)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		b.logf("lockbench: %s done in %v", s.name, time.Since(t0).Round(100*time.Millisecond))
		sections = append(sections, sec)
		fmt.Fprint(stdout, sec.markdown())
	}
	total := time.Since(started).Round(time.Second)
	b.logf("lockbench: all done in %v", total)

	if *out != "" {
		cmdline := "go run ./cmd/lockbench " + strings.Join(args, " ")
		return os.WriteFile(*out, []byte(report(ctx, cmdline, total, sections)+keptTail(*out)), 0o644)
	}
	return nil
}

// goBuild builds the command pkg (relative to the module root, where make
// runs lockbench) into out.
func goBuild(ctx context.Context, out, pkg string, stderr io.Writer) error {
	build := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	build.Stdout, build.Stderr = stderr, stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	return nil
}

func names() string {
	var n []string
	for _, s := range scenarios {
		n = append(n, s.name)
	}
	return strings.Join(n, ",")
}

func choose(list string) ([]scenario, error) {
	if list == "" {
		return scenarios, nil
	}
	var out []scenario
	for name := range strings.SplitSeq(list, ",") {
		i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == strings.TrimSpace(name) })
		if i < 0 {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", name, names())
		}
		out = append(out, scenarios[i])
	}
	return out, nil
}

func (s section) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n", s.title)
	for _, t := range s.tables {
		if t.title != "" {
			fmt.Fprintf(&b, "%s\n\n", t.title)
		}
		fmt.Fprintf(&b, "%s\n", t.markdown())
	}
	if s.shows != "" {
		fmt.Fprintf(&b, "**What this shows.** %s\n\n", s.shows)
	}
	if s.explained {
		b.WriteString("**Profile finding.** A target above is missed; why is written by hand under " +
			"[Profile findings](#profile-findings) at the end of this page.\n\n")
	}
	return b.String()
}

// keptMarker starts the part of the report file that a run keeps as it
// is, written by hand: the profile findings that explain missed targets,
// and the figures of earlier runs for comparison.
const keptMarker = "<!-- make bench keeps everything below this line -->"

// keptTail is what the file at path holds from keptMarker on, or "".
func keptTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if i := strings.Index(string(b), keptMarker); i >= 0 {
		return "\n" + string(b[i:])
	}
	return ""
}

func report(ctx context.Context, cmdline string, took time.Duration, sections []section) string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Written by `make bench` (cmd/lockbench); do not edit by hand. Everything runs on loopback on\n")
	b.WriteString("one machine: a redis-server (`--save \"\" --appendonly no`), two lockd replicas, the peers (the\n")
	b.WriteString("naive Gin + redsync service, etcd) and the load generator share its cores, so the ratios inside\n")
	b.WriteString("one run are what count, not the absolute figures. Redis round trips are counted by a TCP proxy in\n")
	b.WriteString("front of Redis, on a separate copy of the cluster that is never timed (section 1 says how).\n")
	b.WriteString("Each figure is the median over the interleaved repetitions; p99 is the median of the\n")
	b.WriteString("repetitions' p99s and max the largest value seen in any of them. Latencies are in ms, CPU in µs.\n\n")
	fmt.Fprintf(&b, "- Machine: %d cores (runtime.NumCPU), %s\n", runtime.NumCPU(), cpuModel())
	fmt.Fprintf(&b, "- Go: %s; Redis: %s\n", runtime.Version(), redisVersion(ctx))
	fmt.Fprintf(&b, "- Date: %s; the whole run took %v\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), took)
	fmt.Fprintf(&b, "- Command: `%s` (after `make build`; `make bench` runs exactly this)\n\n", cmdline)
	for _, s := range sections {
		b.WriteString(s.markdown())
	}
	return b.String()
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "CPU model unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "CPU model unknown"
}

func redisVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "redis-server", "--version").Output()
	if err != nil {
		return "unknown"
	}
	for f := range strings.FieldsSeq(string(out)) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			return v
		}
	}
	return strings.TrimSpace(string(out))
}
