package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// expiryScenario: many leases that end at the same moment while other
// requests run. It measures what the expiries cost the other requests and
// whether /v1/events reports each one exactly once.
func expiryScenario(b *bench) (section, error) {
	ctx, c := b.ctx, b.single
	n, workers := 5000, 8
	// lead is from the first lease's grant to the moment they all end;
	// around is how long before and after it the other requests count;
	// patience is how long after it the expired events are waited for.
	lead, before, after, patience := 5*time.Second, time.Second, 5*time.Second, 15*time.Second
	if b.smoke {
		n, lead, before, after, patience = 200, 700*time.Millisecond, 200*time.Millisecond, 500*time.Millisecond, 2*time.Second
	}
	seq := runSeq.Add(1)
	leasePrefix, otherPrefix := fmt.Sprintf("exp.%d.lease.", seq), fmt.Sprintf("exp.%d.other.", seq)

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	w := watchExpired(watchCtx, c.urls[0], leasePrefix)
	select {
	case <-w.connected:
	case <-time.After(5 * time.Second):
		return section{}, fmt.Errorf("/v1/events did not connect: %v", w.error())
	}

	// The other requests: acquire + release on fresh names, each request
	// timed on its own, alternating replicas.
	other := newAPI(workers)
	defer other.close()
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var mu sync.Mutex
	type sample struct {
		at   time.Time
		took time.Duration
		err  error
	}
	var samples []sample
	record := func(at time.Time, err error) {
		if loadCtx.Err() != nil {
			return // called off at the end, not failed
		}
		mu.Lock()
		samples = append(samples, sample{at, time.Since(at), err})
		mu.Unlock()
	}
	var load sync.WaitGroup
	for wk := range workers {
		load.Go(func() {
			for i := 0; loadCtx.Err() == nil; i++ {
				name, base := fmt.Sprintf("%s%d.%d", otherPrefix, wk, i), c.urls[(wk+i)%2]
				t0 := time.Now()
				l, err := other.acquire(loadCtx, base, name, 10*time.Second, 0)
				record(t0, err)
				if err != nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				t1 := time.Now()
				record(t1, release(loadCtx, l))
			}
		})
	}

	// Every lease gets the TTL that ends it at end, give or take a
	// request's latency: they all expire within the same second.
	a := newAPI(32)
	defer a.close()
	start := time.Now()
	end := start.Add(lead)
	var late atomic.Int64
	err := forEach(ctx, n, 32, func(i int) error {
		ttl := time.Until(end).Truncate(time.Millisecond)
		if ttl < lead/5 {
			// Granting was slow: this one ends after the others. Said
			// in the report, never a failure.
			ttl = lead / 5
			late.Add(1)
		}
		_, err := a.acquire(ctx, c.urls[i%2], fmt.Sprintf("%s%05d", leasePrefix, i), ttl, 0)
		return err
	})
	if err != nil {
		return section{}, err
	}
	filled := time.Since(start)

	time.Sleep(time.Until(end.Add(after)))
	stopLoad()
	load.Wait()
	// Wait for every expired event, then a little longer for any extra.
	deadline := end.Add(patience)
	for time.Now().Before(deadline) && w.count() < n && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if w.count() >= n {
		time.Sleep(b.scaled(time.Second))
	}
	stopWatch()
	w.wait()
	if ctx.Err() != nil {
		return section{}, ctx.Err()
	}

	var lat []time.Duration
	failed, firstFailure := 0, ""
	for _, s := range samples {
		if s.at.Before(end.Add(-before)) || s.at.After(end.Add(after)) {
			continue
		}
		lat = append(lat, s.took)
		if s.err != nil {
			if failed == 0 {
				firstFailure = fmt.Sprintf(" (the first: %v)", s.err)
			}
			failed++
		}
	}
	l := summarise(lat)
	lateNote := ""
	if k := late.Load(); k > 0 {
		lateNote = fmt.Sprintf(" (granting was slow: %d of them got %v and end up to that much later)", k, lead/5)
	}
	total, distinct, last, reconnects := w.result()
	lastAfter := "–"
	if !last.IsZero() {
		lastAfter = fmt.Sprintf("%.2f", last.Sub(end).Seconds())
	}
	t := &table{header: []string{"leases", "granted in (s)", "`expired` events", "distinct leases", "last one after the end (s)",
		"other requests", "p50", "p99", "max", "failed"}}
	t.add(fmt.Sprint(n), fmt.Sprintf("%.2f", filled.Seconds()), fmt.Sprint(total), fmt.Sprint(distinct), lastAfter,
		fmt.Sprint(len(lat)), ms(l.p50), ms(l.p99), ms(l.max), fmt.Sprint(failed))
	shows := fmt.Sprintf("%d leases are granted over %.2f s, half on each replica, each with the TTL that ends it at the same "+
		"moment%s, while %d clients keep doing acquire + release on other names. The %d requests they started from %v before "+
		"the leases ended to %v after took %s ms at p99 (target < 50 ms: %s), %s ms at worst, and %d failed%s. One `/v1/events` "+
		"subscriber on replica 1, connected before the first grant (and reconnecting with Last-Event-ID when cut off: %d times), "+
		"received %d `expired` events for these leases (target exactly %d: %s), for %d distinct leases, within %v of the end.",
		n, filled.Seconds(), lateNote, workers, len(lat), before, after,
		ms(l.p99), verdict(len(lat) > 0 && l.p99 < 50*time.Millisecond), ms(l.max), failed, firstFailure, reconnects, total, n, verdict(total == n && distinct == n), distinct, patience)
	return section{title: "11. Leases expiring together", tables: []*table{t}, shows: shows}, nil
}

// expiredWatcher counts the `expired` events that /v1/events reports for
// names with a prefix. When the stream ends it reconnects with
// Last-Event-ID, as a client must.
type expiredWatcher struct {
	connected chan struct{} // closed once the first stream is open
	done      chan struct{}

	mu         sync.Mutex
	total      int
	names      map[string]bool
	last       time.Time // when the latest one was read
	reconnects int
	err        error // the latest connection error
}

func watchExpired(ctx context.Context, base, prefix string) *expiredWatcher {
	w := &expiredWatcher{connected: make(chan struct{}), done: make(chan struct{}), names: map[string]bool{}}
	go w.run(ctx, base, prefix)
	return w
}

func (w *expiredWatcher) run(ctx context.Context, base, prefix string) {
	defer close(w.done)
	hc := &http.Client{} // no timeout: it is a stream
	var once sync.Once
	lastID := ""
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			w.mu.Lock()
			w.reconnects++
			w.mu.Unlock()
		}
		if err := w.stream(ctx, hc, base, prefix, &lastID, func() { once.Do(func() { close(w.connected) }) }); err != nil && ctx.Err() == nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// stream reads one connection's events until it ends. client/ has no
// events API, so the stream is read here, as any SSE client would.
func (w *expiredWatcher) stream(ctx context.Context, hc *http.Client, base, prefix string, lastID *string, connected func()) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/events", nil)
	if err != nil {
		return err
	}
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/v1/events: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var id, typ, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if typ == "expired" {
				var ev struct {
					Name string `json:"name"`
				}
				if json.Unmarshal([]byte(data), &ev) == nil && strings.HasPrefix(ev.Name, prefix) {
					w.mu.Lock()
					w.total++
					w.names[ev.Name] = true
					w.last = time.Now()
					w.mu.Unlock()
				}
			}
			if id != "" {
				*lastID = id
			}
			id, typ, data = "", "", ""
		case strings.HasPrefix(line, ":"):
			connected() // ": connected", or a keep-alive
		default:
			k, v, _ := strings.Cut(line, ": ")
			switch k {
			case "id":
				id = v
			case "event":
				typ = v
			case "data":
				data = v
			}
		}
	}
	return sc.Err()
}

func (w *expiredWatcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total
}

func (w *expiredWatcher) error() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// result is the events counted, the distinct names among them, when the
// latest was read, and how often the stream was reopened.
func (w *expiredWatcher) result() (total, distinct int, last time.Time, reconnects int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total, len(w.names), w.last, w.reconnects
}

func (w *expiredWatcher) wait() { <-w.done }
