package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/go-distributed-lock/go-distributed-lock/client"
)

func ExampleClient_Acquire() {
	c, stop := exampleClient() // of a real lockd over a real Redis
	defer stop()
	ctx := context.Background()

	lease, err := c.Acquire(ctx, "nightly-report", client.AcquireOptions{TTL: 30 * time.Second, Owner: "alice"})
	if err != nil {
		panic(err)
	}
	// Fences rise with every grant; they start at Redis's clock in µs.
	fmt.Println("alice holds", lease.Name(), "with a fence:", lease.Fence() > 0)

	// Bob does not wait: he is told who holds it and when to try again.
	_, err = c.Acquire(ctx, "nightly-report", client.AcquireOptions{Owner: "bob"})
	var locked *client.LockedError
	if errors.As(err, &locked) {
		fmt.Println("bob: locked by", locked.Owner, "with alice's fence:", locked.Fence == lease.Fence(), "retry within", locked.RetryAfter <= 30*time.Second)
	}

	if err := lease.Release(ctx); err != nil {
		panic(err)
	}
	fmt.Println("alice's lease:", lease.Err())
	// Output:
	// alice holds nightly-report with a fence: true
	// bob: locked by alice with alice's fence: true retry within true
	// alice's lease: client: lease released
}

func ExampleLease_KeepAlive() {
	c, stop := exampleClient()
	defer stop()
	ctx := context.Background()

	lease, err := c.Acquire(ctx, "migration", client.AcquireOptions{TTL: 300 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	defer lease.Release(ctx)
	lease.KeepAlive(ctx, client.KeepAliveOptions{})

	// The work takes several TTLs. It runs under the lease's context, which
	// would be cancelled the moment the lease could no longer be proven held.
	work := func(ctx context.Context) error {
		select {
		case <-time.After(time.Second):
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	fmt.Println("work:", work(lease.Context()))
	fmt.Println("still held:", lease.Err() == nil)
	// Output:
	// work: <nil>
	// still held: true
}

func ExampleClient_Check() {
	c, stop := exampleClient()
	defer stop()
	ctx := context.Background()

	// A holder that took too long: its lease ran out and someone else got
	// the lock, with a higher fence.
	old, err := c.Acquire(ctx, "ledger", client.AcquireOptions{TTL: 200 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	<-old.Done()
	fmt.Println("old lease:", errors.Is(old.Err(), client.ErrExpired))
	next, err := c.Acquire(ctx, "ledger", client.AcquireOptions{Wait: time.Second})
	if err != nil {
		panic(err)
	}
	defer next.Release(ctx)

	// A resource guarded by the lock asks before accepting a write.
	err = c.Check(ctx, "ledger", old.Fence())
	var stale *client.StaleFenceError
	if errors.As(err, &stale) {
		fmt.Println("old fence refused; the current one is next's:", stale.Current == next.Fence(), "and higher:", next.Fence() > old.Fence())
	}
	fmt.Println("next's fence accepted:", c.Check(ctx, "ledger", next.Fence()) == nil)
	// Output:
	// old lease: true
	// old fence refused; the current one is next's: true and higher: true
	// next's fence accepted: true
}

// ExampleNew has no output: it shows how a program connects, with the
// token lockd's API_TOKENS expects when they are set.
func ExampleNew() {
	c, err := client.New("http://localhost:8081", client.Options{Token: os.Getenv("LOCKD_TOKEN")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	info, err := c.Get(context.Background(), "nightly-report")
	if errors.Is(err, client.ErrUnavailable) {
		fmt.Fprintln(os.Stderr, "lockd is not running:", err)
		return
	}
	fmt.Println(info.Held, info.Owner)
}

func ExampleOptions_tracerProvider() {
	// The application's TracerProvider; a real one exports to a collector
	// (otlptracehttp), this one keeps the spans to print them.
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	c, stop := exampleClientWith(client.Options{TracerProvider: tp})
	defer stop()

	ctx, job := tp.Tracer("report-job").Start(context.Background(), "nightly report")
	lease, err := c.Acquire(ctx, "nightly-report", client.AcquireOptions{TTL: 30 * time.Second})
	if err != nil {
		panic(err)
	}
	if err := lease.Release(ctx); err != nil {
		panic(err)
	}
	job.End()

	// lockd gets the client span's traceparent, so its own spans join the
	// job's trace under it.
	for _, s := range spans.GetSpans() {
		fmt.Printf("%s (%v), in the job's trace: %v\n", s.Name, s.SpanKind, s.SpanContext.TraceID() == job.SpanContext().TraceID())
	}
	// Output:
	// lockd acquire (client), in the job's trace: true
	// lockd release (client), in the job's trace: true
	// nightly report (internal), in the job's trace: true
}
