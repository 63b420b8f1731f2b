package lock

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// BenchmarkTransport compares, for lockd's acquire and release scripts at
// 16 concurrent callers on one Redis, go-redis's plain connection pool
// with its auto-pipelining (experimental in v9.23), which gathers the
// callers' commands into shared pipelines. lockd keeps what this favours
// (doc/BENCHMARKS.md has the figures).
//
//	go test -run '^$' -bench Transport -benchtime 3s ./internal/lock
func BenchmarkTransport(b *testing.B) {
	s := redistest.Start(b, redistest.Options{Password: "pw"})
	client := redis.NewClient(nodeOptions(s.Addr, "pw"))
	b.Cleanup(func() { _ = client.Close() })
	auto, err := client.AutoPipeline()
	if err != nil {
		b.Fatal(err)
	}
	m := &Manager{replica: "bench"}
	for _, tc := range []struct {
		name string
		via  redis.Scripter
	}{{"pool", client}, {"autopipeline", auto}} {
		b.Run(tc.name, func(b *testing.B) {
			var seq atomic.Int64
			b.SetParallelism(8) // 16 callers on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					name := fmt.Sprintf("transport-%d", seq.Add(1))
					keys := m.keys(name)
					r, err := m.sc.acquire.Run(ctx, tc.via, keys, m.argv(name, "tok", 10_000, "", "")...).Slice()
					if err != nil || scriptReply(r).int(0) != 1 {
						b.Errorf("acquire: %v %v", r, err)
						return
					}
					if err := m.sc.release.Run(ctx, tc.via, keys, m.argv(name, "tok", 0, "", "")...).Err(); err != nil {
						b.Errorf("release: %v", err)
						return
					}
				}
			})
		})
	}
}
