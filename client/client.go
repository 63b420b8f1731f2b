package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// DefaultTTL is the lease the service grants when AcquireOptions.TTL is 0.
const DefaultTTL = 30 * time.Second

// maxServerWait is the longest wait the service accepts in one request;
// longer waits are made of several requests.
const maxServerWait = 5 * time.Minute

// maxBody caps what is read of an answer: lockd's are a few hundred bytes,
// and anything else in front of it should not make us buffer a page.
const maxBody = 1 << 20

// Options configure a Client. The zero value talks to an open lockd with
// defaultHTTPClient.
type Options struct {
	// Token is sent as "Authorization: Bearer <Token>" when not empty
	// (lockd's API_TOKENS).
	Token string
	// HTTPClient sends the requests (default: http.DefaultTransport's
	// settings with idle connections dropped after 30 s). Leave its
	// Timeout at 0 or above the longest Wait: a waiting acquire keeps its
	// request open for up to five minutes. Keep its transport's
	// IdleConnTimeout below lockd's HTTP_IDLE_TIMEOUT (default 60 s):
	// otherwise a POST can go out on a connection lockd is closing and
	// fail with "connection reset by peer", and Go does not retry a POST.
	HTTPClient *http.Client
	// TracerProvider makes the client's spans (default: otel's global
	// provider, whose spans cost next to nothing until the application
	// installs one). Every request carries the caller's W3C trace context
	// whatever the provider; see the package doc's Tracing section.
	TracerProvider trace.TracerProvider
}

// Client talks to one lockd. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	token  string
	hc     *http.Client
	tracer trace.Tracer
	// server is the span attributes naming the service, set once since
	// every request goes to the same place.
	server []attribute.KeyValue
}

// New returns a Client for the lockd at baseURL, e.g.
// "http://localhost:8081". It returns an error only when baseURL is not an
// absolute http or https URL.
func New(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: server URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: server URL %q: want http://host:port or https://host:port", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	hc := opts.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient
	}
	tp := opts.TracerProvider
	if tp == nil {
		// Taken now, the global provider still applies if the
		// application installs one later: otel's default forwards to it.
		tp = otel.GetTracerProvider()
	}
	return &Client{base: u, token: opts.Token, hc: hc, tracer: tp.Tracer(tracerName), server: serverAttributes(u)}, nil
}

// defaultHTTPClient is http.DefaultClient but for the idle connections'
// lifetime, 30 s rather than 90 s: under lockd's HTTP_IDLE_TIMEOUT
// default (60 s), so a connection is never reused just as lockd closes it.
var defaultHTTPClient = func() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.IdleConnTimeout = 30 * time.Second
	return &http.Client{Transport: tr}
}()

// AcquireOptions are the parameters of one Acquire.
type AcquireOptions struct {
	// TTL is how long the lease lasts unless extended, 100ms to the
	// service's MAX_TTL (1h by default). 0 means DefaultTTL.
	TTL time.Duration
	// Wait is how long to wait for a held lock: 0 fails at once with
	// ErrLocked, a negative Wait waits until ctx ends. Waits over five
	// minutes are made of several requests.
	Wait time.Duration
	// Owner is free text naming the holder for people and logs (up to 256
	// bytes, no control characters); others see it in LockInfo and
	// LockedError.
	Owner string
	// Mode is a lock's: Exclusive (the default; "" means it too) or
	// Shared. Any number of shared holders hold a lock at once, an
	// exclusive one holds it alone, and a waiting exclusive request stops
	// new shared grants so that writers do not starve. A semaphore takes
	// no Mode (ErrInvalidArgument).
	Mode Mode
	// Fair makes a waiting acquire wait in the name's queue in Redis:
	// grants go in arrival order across every replica. While a queue
	// exists on a name, every acquire of it joins the queue or fails at
	// once. A Wait over five minutes joins the queue again, at its end,
	// every five minutes (each request waits at most that long).
	Fair bool
	// LockDelay (0 to 60s, in whole milliseconds; 0 means none) keeps the
	// name refused this long if the lease ends by expiry rather than
	// Release, so that late writes of a holder that died land before
	// anyone else starts. Others get a *LockDelayError meanwhile, or wait
	// the delay out.
	LockDelay time.Duration
}

// leaseJSON is the Lease schema of doc/openapi.yaml. The client keeps its
// own copy instead of importing the server's internal types: it depends only
// on the documented contract, as a program in another language would.
type leaseJSON struct {
	Name     string `json:"name"`
	Token    string `json:"token"`
	Fence    int64  `json:"fence"`
	Owner    string `json:"owner"`
	TTLMS    int64  `json:"ttl_ms"`
	WaitedMS int64  `json:"waited_ms"`
	Kind     Kind   `json:"kind"`
	Mode     Mode   `json:"mode"`
	Limit    int    `json:"limit"`
}

// Acquire takes the lock name, waiting up to opts.Wait for its holders to
// let go. The lease is not renewed unless KeepAlive is called. It returns a
// *LockedError (ErrLocked) when the lock stayed held, a *LockDelayError
// (ErrLockDelay) when a lock-delay outlasted the wait, a
// *KindMismatchError (ErrKindMismatch) when the name is a semaphore,
// ErrUnsupported (shared, fair or lock-delay in quorum mode),
// ErrInvalidArgument, ErrUnauthenticated, ErrUnavailable,
// ErrTooManyRequests, another *APIError, or ctx's error.
func (c *Client) Acquire(ctx context.Context, name string, opts AcquireOptions) (*Lease, error) {
	return c.acquire(ctx, KindLock, name, 0, opts)
}

func (c *Client) acquire(ctx context.Context, kind Kind, name string, limit int, opts AcquireOptions) (*Lease, error) {
	forever := opts.Wait < 0
	deadline := time.Now().Add(opts.Wait)
	for {
		wait := maxServerWait
		last := !forever && time.Until(deadline) <= maxServerWait
		if !forever {
			wait = min(max(time.Until(deadline), 0), maxServerWait)
		}
		l, err := c.acquireOnce(ctx, kind, name, limit, opts, wait)
		if err == nil || last || !(errors.Is(err, ErrLocked) || errors.Is(err, ErrLockDelay)) {
			return l, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// tokenJSON is the body of an extend or a release.
type tokenJSON struct {
	Token string `json:"token"`
	TTL   string `json:"ttl,omitempty"`
}

// acquireJSON is an acquire's body; fields left empty are not sent.
type acquireJSON struct {
	Limit     *int   `json:"limit,omitempty"`
	TTL       string `json:"ttl,omitempty"`
	Wait      string `json:"wait,omitempty"`
	Owner     string `json:"owner,omitempty"`
	Mode      string `json:"mode,omitempty"`
	Fair      bool   `json:"fair,omitempty"`
	LockDelay string `json:"lock_delay,omitempty"`
}

func (c *Client) acquireOnce(ctx context.Context, kind Kind, name string, limit int, opts AcquireOptions, wait time.Duration) (*Lease, error) {
	// Only what was asked is sent: a lockd from before semaphores accepts
	// a plain lock's request as it always did.
	body := acquireJSON{Owner: opts.Owner, Mode: string(opts.Mode), Fair: opts.Fair}
	if kind == KindSemaphore {
		body.Limit = &limit
	}
	if opts.TTL != 0 {
		body.TTL = opts.TTL.String()
	}
	if wait > 0 {
		body.Wait = wait.String()
	}
	if opts.LockDelay != 0 {
		body.LockDelay = opts.LockDelay.String()
	}
	var lj leaseJSON
	sent, err := c.do(ctx, "acquire", http.MethodPost, namePath(kind, name, "acquire"), nil, &body, &lj)
	if err != nil {
		return nil, err
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	// An answer without them (a lockd from before semaphores) is what
	// was asked for.
	if lj.Kind == "" {
		lj.Kind = kind
	}
	if lj.Kind == KindLock && lj.Mode == "" {
		lj.Mode = opts.Mode
		if lj.Mode == "" {
			lj.Mode = Exclusive
		}
	}
	if lj.Kind == KindSemaphore && lj.Limit == 0 {
		lj.Limit = limit
	}
	return newLease(c, lj, sent, ttl), nil
}

// Extend renews a lease known only by its name and token (from another
// process, say): ttl is the new validity, or 0 for the one it was acquired
// with. It returns ErrNotHolder, ErrInvalidArgument, ErrUnauthenticated,
// ErrUnavailable, another *APIError, or ctx's error. Lease.Extend is the
// usual way.
func (c *Client) Extend(ctx context.Context, name, token string, ttl time.Duration) (*Lease, error) {
	return c.extendLease(ctx, KindLock, name, token, ttl)
}

func (c *Client) extendLease(ctx context.Context, kind Kind, name, token string, ttl time.Duration) (*Lease, error) {
	lj, sent, err := c.extend(ctx, kind, name, token, ttl)
	if err != nil {
		return nil, err
	}
	if ttl == 0 {
		// The acquire's TTL is not in the answer; what is left is the
		// closest estimate, and only Lease.TTL reads it.
		ttl = time.Duration(lj.TTLMS) * time.Millisecond
	}
	if lj.Kind == "" {
		lj.Kind = kind
	}
	return newLease(c, lj, sent, ttl), nil
}

func (c *Client) extend(ctx context.Context, kind Kind, name, token string, ttl time.Duration) (leaseJSON, time.Time, error) {
	body := tokenJSON{Token: token}
	if ttl != 0 {
		body.TTL = ttl.String()
	}
	var lj leaseJSON
	sent, err := c.do(ctx, "extend", http.MethodPost, namePath(kind, name, "extend"), nil, &body, &lj)
	return lj, sent, err
}

// Release gives back a lease known only by its name and token. It returns
// ErrNotHolder when the token no longer holds the lock, ErrKindMismatch
// when the name is a semaphore, ErrInvalidArgument, ErrUnauthenticated,
// ErrUnavailable, another *APIError, or ctx's error. Lease.Release is the
// usual way.
func (c *Client) Release(ctx context.Context, name, token string) error {
	return c.release(ctx, KindLock, name, token)
}

func (c *Client) release(ctx context.Context, kind Kind, name, token string) error {
	_, err := c.do(ctx, "release", http.MethodPost, namePath(kind, name, "release"), nil, &tokenJSON{Token: token}, nil)
	return err
}

// LockInfo is what anyone may see of a lock or a semaphore: never a
// token.
type LockInfo struct {
	Name string `json:"name"`
	// Held is true while at least one holder holds the name.
	Held bool `json:"held"`
	// Owner, Fence and TTL are the holder's with the highest fence (the
	// latest grant). Fence is 0 when free or held without one (by lockd's
	// demo endpoint).
	Owner string `json:"owner"`
	Fence int64  `json:"fence"`
	// TTL is the holder's validity left when the service answered.
	TTL time.Duration `json:"-"`
	// Kind is what the name is: KindLock or KindSemaphore.
	Kind Kind `json:"kind,omitzero"`
	// Mode is a lock's holders' mode, "" when free or for a semaphore.
	Mode Mode `json:"mode,omitzero"`
	// Limit is a semaphore's limit, 0 for a lock (or a semaphore's free
	// name).
	Limit int `json:"limit,omitzero"`
	// Holders are every live holder, by fence.
	Holders []Holder `json:"holders,omitzero"`
	// Queue is how many wait in the name's fair queue.
	Queue int `json:"queue,omitzero"`
	// Waiters are the queue, first to be served first (from Inspect
	// and InspectSemaphore; a listing leaves it out).
	Waiters []Waiter `json:"waiters,omitzero"`
	// DelayUntil is the end of a lock-delay in force, on the service's
	// clock; zero when there is none.
	DelayUntil time.Time `json:"delay_until,omitzero"`
}

// Holder is one holder of a lock or a semaphore: never its token.
type Holder struct {
	Owner string `json:"owner"`
	Fence int64  `json:"fence"`
	// TTL is the holder's validity left when the service answered.
	TTL time.Duration `json:"-"`
	// Mode is a lock holder's mode, "" for a semaphore's.
	Mode Mode `json:"mode,omitzero"`
}

// Waiter is one request in a name's fair queue: never its token.
type Waiter struct {
	Owner string `json:"owner"`
	// Mode is a lock waiter's mode, "" for a semaphore's.
	Mode Mode `json:"mode,omitzero"`
}

type holderJSON struct {
	Owner string `json:"owner"`
	Fence int64  `json:"fence"`
	TTLMS int64  `json:"ttl_ms"`
	Mode  Mode   `json:"mode"`
}

func holdersOf(js []holderJSON) []Holder {
	if len(js) == 0 {
		return nil
	}
	hs := make([]Holder, 0, len(js))
	for _, h := range js {
		hs = append(hs, Holder{Owner: h.Owner, Fence: h.Fence, TTL: time.Duration(h.TTLMS) * time.Millisecond, Mode: h.Mode})
	}
	return hs
}

// latest is the holder with the highest fence, when there is one.
func latest(hs []Holder) (Holder, bool) {
	var top Holder
	for _, h := range hs {
		if h.Fence >= top.Fence {
			top = h
		}
	}
	return top, len(hs) > 0
}

// lockJSON is the Lock schema of doc/openapi.yaml, and a listing's entry.
type lockJSON struct {
	Name       string       `json:"name"`
	Held       bool         `json:"held"`
	Owner      string       `json:"owner"`
	Fence      int64        `json:"fence"`
	TTLMS      int64        `json:"ttl_ms"`
	Kind       Kind         `json:"kind"`
	Mode       Mode         `json:"mode"`
	Limit      int          `json:"limit"`
	Holders    []holderJSON `json:"holders"`
	Queue      int          `json:"queue"`
	Waiters    []Waiter     `json:"waiters"`
	DelayUntil string       `json:"delay_until"`
}

func (j lockJSON) info() (LockInfo, error) {
	info := LockInfo{
		Name: j.Name, Held: j.Held, Owner: j.Owner, Fence: j.Fence, TTL: time.Duration(j.TTLMS) * time.Millisecond,
		Kind: j.Kind, Mode: j.Mode, Limit: j.Limit, Holders: holdersOf(j.Holders), Queue: j.Queue, Waiters: j.Waiters,
	}
	if j.DelayUntil != "" {
		t, err := time.Parse(time.RFC3339Nano, j.DelayUntil)
		if err != nil {
			return LockInfo{}, fmt.Errorf("delay_until: %w", err)
		}
		info.DelayUntil = t
	}
	// A semaphore's answer lists its holders only; a lock's names the
	// latest at the top as well.
	if top, ok := latest(info.Holders); ok && info.Fence == 0 {
		info.Owner, info.Fence, info.TTL = top.Owner, top.Fence, top.TTL
	}
	// A plain holder (an older lockd, or the demo's) is the only one.
	if info.Held && info.Holders == nil && info.Kind != KindSemaphore {
		info.Holders = []Holder{{Owner: info.Owner, Fence: info.Fence, TTL: info.TTL, Mode: info.Mode}}
	}
	return info, nil
}

// Get returns the state of the lock name; a free lock has Held false. It
// returns a *KindMismatchError (ErrKindMismatch) when the name is a
// semaphore, ErrInvalidArgument, ErrUnauthenticated, ErrUnavailable,
// another *APIError, or ctx's error.
func (c *Client) Get(ctx context.Context, name string) (LockInfo, error) {
	return c.get(ctx, KindLock, name)
}

func (c *Client) get(ctx context.Context, kind Kind, name string) (LockInfo, error) {
	var j lockJSON
	path := namePath(kind, name, "")
	if _, err := c.do(ctx, "inspect", http.MethodGet, path, nil, nil, &j); err != nil {
		return LockInfo{}, err
	}
	if j.Kind == "" {
		j.Kind = kind
	}
	info, err := j.info()
	if err != nil {
		return LockInfo{}, fmt.Errorf("client: GET %s: decoding the answer: %w", path, err)
	}
	return info, nil
}

// Page is one page of List. NextCursor is "" on the last page; a page may
// be short, or even empty, while more follow.
type Page struct {
	Locks      []LockInfo
	NextCursor string
}

// List returns one page of the held locks and semaphores whose names
// start with prefix:
// at most limit (1 to 1000; 0 for the service's default of 100), from
// cursor ("" for the first page, else the previous NextCursor). It returns
// ErrInvalidArgument, ErrUnauthenticated, ErrUnavailable, another
// *APIError, or ctx's error. All walks every page.
func (c *Client) List(ctx context.Context, prefix string, limit int, cursor string) (Page, error) {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var j struct {
		Locks      []lockJSON `json:"locks"`
		NextCursor string     `json:"next_cursor"`
	}
	if _, err := c.do(ctx, "list", http.MethodGet, "/v1/locks", q, nil, &j); err != nil {
		return Page{}, err
	}
	p := Page{NextCursor: j.NextCursor, Locks: make([]LockInfo, 0, len(j.Locks))}
	for _, e := range j.Locks {
		// Entries have no "held": a listed name is held, unless its
		// holders are listed and there are none (only a queue or a
		// delay is left of it).
		e.Held = e.Holders == nil || len(e.Holders) > 0
		if e.Kind == "" {
			e.Kind = KindLock
		}
		info, err := e.info()
		if err != nil {
			return Page{}, fmt.Errorf("client: GET /v1/locks: decoding the answer: %w", err)
		}
		p.Locks = append(p.Locks, info)
	}
	return p, nil
}

// All yields every held lock whose name starts with prefix, a page at a
// time behind the scenes. On an error it yields it once and stops. A lock
// taken or released during the walk may or may not be seen.
func (c *Client) All(ctx context.Context, prefix string) iter.Seq2[LockInfo, error] {
	return func(yield func(LockInfo, error) bool) {
		cursor := ""
		for {
			p, err := c.List(ctx, prefix, 0, cursor)
			if err != nil {
				yield(LockInfo{}, err)
				return
			}
			for _, l := range p.Locks {
				if !yield(l, nil) {
					return
				}
			}
			if p.NextCursor == "" {
				return
			}
			cursor = p.NextCursor
		}
	}
}

// Check asks whether fence is still a live holder's of the lock name. It
// returns nil when it is (at the moment the service answered), a
// *StaleFenceError (ErrStaleFence) when it is not, ErrKindMismatch when
// the name is a semaphore, ErrInvalidArgument, ErrUnauthenticated,
// ErrUnavailable, another *APIError, or ctx's error.
func (c *Client) Check(ctx context.Context, name string, fence int64) error {
	return c.check(ctx, KindLock, name, fence)
}

func (c *Client) check(ctx context.Context, kind Kind, name string, fence int64) error {
	_, err := c.do(ctx, "check", http.MethodPost, namePath(kind, name, "check"), nil, map[string]int64{"fence": fence}, nil)
	return err
}

// namePath is the path of op ("" to inspect) on a name of kind.
func namePath(kind Kind, name, op string) string {
	p := "/v1/locks/"
	if kind == KindSemaphore {
		p = "/v1/semaphores/"
	}
	p += url.PathEscape(name)
	if op != "" {
		p += "/" + op
	}
	return p
}

// do sends one request and decodes a 2xx answer into out (when not nil),
// inside a client span named after op (a fixed word per API call: the
// path holds the lock's name, which spans must not carry). It returns the
// moment the request was handed to the transport: validity is counted from
// there, never from the answer's arrival.
func (c *Client) do(ctx context.Context, op, method, path string, q url.Values, in, out any) (time.Time, error) {
	ctx, span := c.startSpan(ctx, op, method)
	sent, status, err := c.send(ctx, method, path, q, in, out)
	endSpan(ctx, span, status, err)
	return sent, err
}

// send is do without the span. status is the answer's HTTP status, 0 when
// none came.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, in, out any) (sent time.Time, status int, err error) {
	// path is escaped (namePath escapes the name): it joins the base's
	// escaped path as it is, and Path gets its unescaped form, so that
	// the URL is not escaped twice (a name "a b" went out as a%2520b).
	u := *c.base
	unescaped, err := url.PathUnescape(path)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("client: %w", err)
	}
	u.RawPath = u.EscapedPath() + path
	u.Path += unescaped
	u.RawQuery = q.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return time.Time{}, 0, fmt.Errorf("client: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("client: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	injectTraceContext(ctx, req.Header)
	sent = time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			// Our own cancellation or deadline, not the service's fault.
			return sent, 0, fmt.Errorf("client: %s %s: %w", method, path, context.Cause(ctx))
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it repeats the method and URL
		}
		return sent, 0, fmt.Errorf("%w: %s %s: %w", ErrUnavailable, method, u.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		if ctx.Err() != nil {
			return sent, resp.StatusCode, fmt.Errorf("client: %s %s: %w", method, path, context.Cause(ctx))
		}
		return sent, resp.StatusCode, fmt.Errorf("%w: %s %s: reading the answer: %w", ErrUnavailable, method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return sent, resp.StatusCode, decodeError(resp, b)
	}
	if out == nil {
		return sent, resp.StatusCode, nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return sent, resp.StatusCode, fmt.Errorf("client: %s %s: decoding the answer: %w", method, path, err)
	}
	return sent, resp.StatusCode, nil
}

// decodeError turns an error answer into an *APIError, or into the
// *LockedError, *StaleFenceError, *KindMismatchError, *LimitMismatchError
// or *LockDelayError that carries the extra fields.
func decodeError(resp *http.Response, b []byte) error {
	var j struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Holder       *holderJSON  `json:"holder"`
		Holders      []holderJSON `json:"holders"`
		Mode         Mode         `json:"mode"`
		Limit        *int         `json:"limit"`
		Queue        int          `json:"queue"`
		Kind         Kind         `json:"kind"`
		DelayUntil   string       `json:"delay_until"`
		CurrentFence *int64       `json:"current_fence"`
	}
	api := &APIError{Status: resp.StatusCode}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		api.RetryAfter = time.Duration(secs) * time.Second
	}
	if err := json.Unmarshal(b, &j); err != nil || j.Error.Code == "" {
		// Not lockd's shape: a proxy, a load balancer, something else on
		// the port. Show a little of it.
		api.Message = strings.TrimSpace(string(b[:min(len(b), 200)]))
		if api.Message == "" {
			api.Message = http.StatusText(resp.StatusCode)
		}
		return api
	}
	api.Code, api.Message = j.Error.Code, j.Error.Message
	switch {
	case api.Code == "locked" && (j.Holder != nil || len(j.Holders) > 0):
		e := &LockedError{Holders: holdersOf(j.Holders), Mode: j.Mode, Queue: j.Queue, RetryAfter: api.RetryAfter, API: api}
		if j.Limit != nil {
			e.Limit = *j.Limit
		}
		top, _ := latest(e.Holders)
		if j.Holder != nil {
			top = Holder{Owner: j.Holder.Owner, Fence: j.Holder.Fence, TTL: time.Duration(j.Holder.TTLMS) * time.Millisecond, Mode: cmp.Or(j.Holder.Mode, j.Mode)}
		}
		e.Owner, e.Fence, e.TTL = top.Owner, top.Fence, top.TTL
		if e.Holders == nil {
			e.Holders = []Holder{top} // a lockd from before shared locks
		}
		return e
	case api.Code == "stale_fence" && j.CurrentFence != nil:
		return &StaleFenceError{Current: *j.CurrentFence, API: api}
	case api.Code == "kind_mismatch" && j.Kind != "":
		return &KindMismatchError{Kind: j.Kind, API: api}
	case api.Code == "limit_mismatch" && j.Limit != nil:
		return &LimitMismatchError{Limit: *j.Limit, API: api}
	case api.Code == "lock_delay" && j.DelayUntil != "":
		until, err := time.Parse(time.RFC3339Nano, j.DelayUntil)
		if err != nil {
			return api
		}
		return &LockDelayError{Until: until, RetryAfter: api.RetryAfter, API: api}
	}
	return api
}
