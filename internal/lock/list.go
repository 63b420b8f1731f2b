package lock

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// List limits. A cursor carries at most the few names a SCAN batch returned
// beyond a page's limit, so MaxCursorLen is generous.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
	MaxCursorLen     = 8 << 10
	// maxScans bounds the SCAN round trips of one page, so a database
	// holding many other keys answers with a short page rather than slowly.
	maxScans = 64
)

// Entry is one held lock in a List page.
type Entry struct {
	Name   string
	Holder Holder // the holder with the highest fence
	State  State
}

// listCursor is what an opaque List cursor holds: where SCAN stopped, and
// the names of the batch that did not fit in the page. Keeping those names,
// rather than scanning the batch again, means no lock is skipped or repeated
// because of a page boundary.
type listCursor struct {
	Scan    uint64   `json:"c"`
	Done    bool     `json:"d,omitempty"` // SCAN has finished; only Pending is left
	Pending []string `json:"p,omitempty"`
	// In cluster mode (clusterList): the master being scanned, the slots
	// it served when its scan began, and the slots already listed, as
	// ranges "first,last,first,last...".
	Addr  string   `json:"a,omitempty"`
	Start []uint16 `json:"s,omitempty"`
	Seen  []uint16 `json:"x,omitempty"`
}

// List returns held locks whose names start with prefix, at most limit of
// them (0 means DefaultListLimit), and the cursor for the next page, "" once
// every lock was listed. Demo locks are included. Like Redis SCAN, which it
// is built on, a page may hold fewer locks than limit while more follow, and
// a lock taken or released during the listing may or may not appear. It
// returns ErrInvalidArgument for a bad prefix, limit or cursor, or
// ErrUnavailable.
func (m *Manager) List(ctx context.Context, prefix string, limit int, cursor string) ([]Entry, string, error) {
	if limit == 0 {
		limit = DefaultListLimit
	}
	if limit < 1 || limit > MaxListLimit {
		return nil, "", invalid("limit %d is outside 1 to %d", limit, MaxListLimit)
	}
	if err := ValidateName(prefix); err != nil && prefix != "" {
		return nil, "", invalid("prefix: %v", err)
	}
	cur, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}

	var names []string
	for len(cur.Pending) > 0 && len(names) < limit {
		if strings.HasPrefix(cur.Pending[0], prefix) {
			names = append(names, cur.Pending[0])
		}
		cur.Pending = cur.Pending[1:]
	}
	if m.cluster != nil {
		names, err = m.clusterList(ctx, &cur, prefix, names, limit)
	} else {
		names, err = m.nodeList(ctx, &cur, prefix, names, limit)
	}
	if err != nil {
		return nil, "", err
	}
	entries, err := m.inspectMany(ctx, names)
	if err != nil {
		return nil, "", err
	}
	if cur.Done && len(cur.Pending) == 0 {
		return entries, "", nil
	}
	return entries, encodeCursor(cur), nil
}

// nodeList adds to names, up to limit, the locks whose names start with
// prefix, SCANning one node from cur's place. In quorum mode a listing
// walks the keyspace of one usable node, and keeps the locks a majority
// holds (inspectMany): a lock that node missed is not listed.
func (m *Manager) nodeList(ctx context.Context, cur *listCursor, prefix string, names []string, limit int) ([]string, error) {
	n := m.listNode()
	if n == nil {
		return nil, &kindError{ErrUnavailable, errNodeOut}
	}
	match := KeyPrefix + globEscape(prefix) + "*"
	for scans := 0; !cur.Done && len(names) < limit && scans < maxScans; scans++ {
		keys, next, err := n.client.Scan(ctx, cur.Scan, match, int64(limit-len(names))).Result()
		if err != nil {
			return nil, &kindError{ErrUnavailable, fmt.Errorf("lock: list: %w", err)}
		}
		cur.Scan, cur.Done = next, next == 0
		for _, k := range keys {
			names = cur.take(names, strings.TrimPrefix(k, KeyPrefix), limit)
		}
	}
	return names, nil
}

// inspectTimeout bounds each node's answer to an inspection.
const inspectTimeout = 500 * time.Millisecond

// inspected is one node's view of a lock.
type inspected struct {
	token string // the grant's token, to group nodes that agree; never shown
	h     Holder
	st    *State // a record of richer grants (one node only: no quorum mode)
}

// inspectedFrom reads the inspect script's answer. A record counts when it
// has holders, waiters or a lock-delay in force.
func inspectedFrom(r scriptReply) inspected {
	switch r.int(0) {
	case 1:
		return inspected{token: r.str(4), h: Holder{Owner: r.str(1), Fence: r.int(2), TTL: ms(r.int(3))}}
	case 2:
		st, err := stateOf(r.str(1), r.int(2))
		if err != nil || (len(st.Holders) == 0 && len(st.Waiters) == 0 && st.DelayUntil.IsZero()) {
			return inspected{}
		}
		return inspected{token: "record", h: st.top(), st: &st}
	}
	return inspected{}
}

// inspectMany reads locks in one round trip per node (a pipeline of the
// inspect script) and returns those a quorum of nodes hold with the same
// grant, in the order of names. It returns ErrUnavailable when too few
// nodes answer.
func (m *Manager) inspectMany(ctx context.Context, names []string) ([]Entry, error) {
	if len(names) == 0 {
		return nil, nil
	}
	got, errs := fanOut(ctx, m, inspectTimeout, func(ctx context.Context, n *node) ([]inspected, error) {
		return inspectOn(ctx, m, n, names)
	})
	if len(got) < m.quorum() {
		return nil, unavailable("inspect", errs)
	}
	entries := make([]Entry, 0, len(names))
	for i, name := range names {
		if h, ok := agreed(got, i, m.quorum()); ok {
			e := Entry{Name: name, Holder: h, State: plainState(h)}
			if st := got[0].val[i].st; st != nil && len(got) == 1 {
				e.State = *st
			}
			entries = append(entries, e)
		}
	}
	return entries, nil
}

// agreed is the holder of the i-th lock if a quorum of the answers hold the
// same grant. Its fence and owner are those its fence round wrote (the
// highest); its time left is the shortest any node gives.
func agreed(got []reply[[]inspected], i, quorum int) (Holder, bool) {
	for _, r := range got {
		tok := r.val[i].token
		if tok == "" {
			continue
		}
		h, n := r.val[i].h, 0
		for _, o := range got {
			if o.val[i].token == tok {
				n++
				h.TTL = min(h.TTL, o.val[i].h.TTL)
				if o.val[i].h.Fence > h.Fence {
					h.Fence, h.Owner = o.val[i].h.Fence, o.val[i].h.Owner
				}
			}
		}
		if n >= quorum {
			return h, true
		}
	}
	return Holder{}, false
}

// inspectOn runs the inspect script for every name on n in one pipeline.
func inspectOn(ctx context.Context, m *Manager, n *node, names []string) ([]inspected, error) {
	run := func() ([]*redis.Cmd, error) {
		pipe := n.client.Pipeline()
		cmds := make([]*redis.Cmd, len(names))
		for i, name := range names {
			cmds[i] = m.sc.inspect.EvalSha(ctx, pipe, m.keys(name))
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The script cache was flushed behind lockd's back: load, retry.
		if err = m.sc.inspect.Load(ctx, n.client).Err(); err == nil {
			cmds, err = run()
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]inspected, len(names))
	for i, c := range cmds {
		res, err := c.Slice()
		if err != nil {
			return nil, err
		}
		out[i] = inspectedFrom(scriptReply(res))
	}
	return out, nil
}

// take adds name to the page while it has room, and keeps it for the next
// page otherwise.
func (c *listCursor) take(names []string, name string, limit int) []string {
	if len(names) < limit {
		return append(names, name)
	}
	c.Pending = append(c.Pending, name)
	return names
}

func encodeCursor(c listCursor) string {
	b, _ := json.Marshal(c) // plain struct: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor accepts "" (the first page) or a cursor List returned. A
// forged cursor can at worst name locks to look at, which GET allows anyway.
func decodeCursor(s string) (listCursor, error) {
	var c listCursor
	if s == "" {
		return c, nil
	}
	if len(s) > MaxCursorLen {
		return c, invalid("cursor is longer than %d bytes", MaxCursorLen)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		return c, invalid("cursor is not one this service returned")
	}
	return c, nil
}

// globEscape quotes SCAN MATCH's special characters, so a prefix is taken
// literally.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// listNode is the first usable node, or nil: a node that stopped
// answering is not waited for.
func (m *Manager) listNode() *node {
	for _, n := range m.nodes {
		if n.usable() {
			return n
		}
	}
	return nil
}
