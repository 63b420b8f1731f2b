# go-distributed-lock. `make demo` runs it, `make test` checks it.
GO ?= go

.PHONY: build demo test vet fuzz safety diagram clean bench bench-smoke

build:
	$(GO) build -o bin/ ./cmd/lockd ./cmd/lockdemo ./cmd/lockctl

# exec: lockdemo, not make, receives Ctrl-C and stops its processes in order.
# make demo REDIS_NODES=3 runs quorum mode over three redis-server processes.
# REDIS_MODE=cluster runs a Redis Cluster (3 masters, 3 replicas, database
# 0), REDIS_MODE=sentinel a master, 2 replicas and 3 sentinels, as the
# docker-compose.{cluster,sentinel}.yml overrides do; neither goes with
# REDIS_NODES=3.
REDIS_NODES ?= 1
REDIS_MODE ?= single
demo: build
	exec ./bin/lockdemo -redis-nodes $(REDIS_NODES) -redis-mode $(REDIS_MODE)

# ./... includes internal/safety, which runs its short fault-injection
# subset here; make safety runs every scenario.
test: vet
	$(GO) test -race -count=1 -parallel 4 -timeout 8m ./...
	$(MAKE) fuzz
	$(MAKE) bench-smoke

vet:
	$(GO) vet ./...

# A few seconds of coverage-guided fuzzing of the input parsing. Budgets are
# counts of executions, not durations: with a duration, Go's fuzzing
# coordinator can fail with a bare "context deadline exceeded" when a busy
# machine leaves a worker mid-call at the deadline (golang/go#75804).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzValidateName$$' -fuzztime 50000x ./internal/lock
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBody$$' -fuzztime 8000x ./internal/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzBearer$$' -fuzztime 5000x ./internal/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzRequestID$$' -fuzztime 4000x ./internal/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime 8000x ./internal/config

# The whole fault-injection suite (minutes): real redis-server and lockd
# processes, toxiproxy, and the checkers of internal/safety/check. It prints
# the summary table and leaves it in $(SAFETY_REPORT) to paste.
SAFETY_REPORT ?= bin/safety-report.md
safety:
	mkdir -p $(dir $(SAFETY_REPORT))
	SAFETY_REPORT=$(abspath $(SAFETY_REPORT)) $(GO) test -count=1 -timeout 30m -run '^TestSafety$$' ./internal/safety -safety.full
	cat $(SAFETY_REPORT)

# lockd against its Redis floor, redsync and its peers (a naive Gin +
# redsync service; etcd when etcd-server is installed), on real processes it
# starts on loopback; rewrites doc/BENCHMARKS.md (a few minutes).
bench: build
	$(GO) run ./cmd/lockbench -lockd bin/lockd -out doc/BENCHMARKS.md

# Every scenario for about a second: checks that the tool works, asserts no
# timing. make test runs it.
bench-smoke: build
	out=$$(mktemp -t lockbench.XXXXXX) && $(GO) run ./cmd/lockbench -smoke -lockd bin/lockd -out $$out; \
	status=$$?; rm -f $$out; exit $$status

# Drives the dashboard through the README scenario in headless Chromium
# (apt-get install chromium) and saves doc/dashboard.png.
.PHONY: dashboard-screenshot
dashboard-screenshot:
	$(GO) test -count=1 -run '^TestDashboardInBrowser$$' ./internal/httpapi -dashboard.screenshot=$(abspath doc/dashboard.png)

diagram:
	dot -Tpng -Gdpi=110 doc/go-distributed-lock.dot -o doc/go-distributed-lock.png

clean:
	rm -rf bin
