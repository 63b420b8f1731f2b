# go-distributed-lock. `make demo` runs it, `make test` checks it.
GO ?= go

.PHONY: build demo test vet fuzz diagram clean

build:
	$(GO) build -o bin/ ./cmd/lockd ./cmd/lockdemo

# exec: lockdemo, not make, receives Ctrl-C and stops its processes in order.
# make demo REDIS_NODES=3 runs quorum mode over three redis-server processes.
REDIS_NODES ?= 1
demo: build
	exec ./bin/lockdemo -redis-nodes $(REDIS_NODES)

test: vet
	$(GO) test -race -count=1 -parallel 4 -timeout 8m ./...
	$(MAKE) fuzz

vet:
	$(GO) vet ./...

# A few seconds of coverage-guided fuzzing of the input parsing.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzValidateName$$' -fuzztime 5s ./internal/lock
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBody$$' -fuzztime 5s ./internal/httpapi

diagram:
	dot -Tpng -Gdpi=110 doc/go-distributed-lock.dot -o doc/go-distributed-lock.png

clean:
	rm -rf bin
