package lock

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

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
	Holder Holder
}

// listCursor is what an opaque List cursor holds: where SCAN stopped, and
// the names of the batch that did not fit in the page. Keeping those names,
// rather than scanning the batch again, means no lock is skipped or repeated
// because of a page boundary.
type listCursor struct {
	Scan    uint64   `json:"c"`
	Done    bool     `json:"d,omitempty"` // SCAN has finished; only Pending is left
	Pending []string `json:"p,omitempty"`
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
	// In quorum mode a listing walks the keyspace of one node in quorums:
	// a lock that node missed is not listed.
	n := m.listNode()
	if n == nil {
		return nil, "", &kindError{ErrUnavailable, errNodeOut}
	}
	match := KeyPrefix + globEscape(prefix) + "*"
	for scans := 0; !cur.Done && len(names) < limit && scans < maxScans; scans++ {
		keys, next, err := n.client.Scan(ctx, cur.Scan, match, int64(limit-len(names))).Result()
		if err != nil {
			return nil, "", &kindError{ErrUnavailable, fmt.Errorf("lock: list: %w", err)}
		}
		cur.Scan, cur.Done = next, next == 0
		for _, k := range keys {
			name := strings.TrimPrefix(k, KeyPrefix)
			if len(names) < limit {
				names = append(names, name)
			} else {
				cur.Pending = append(cur.Pending, name)
			}
		}
	}

	entries, err := inspectAll(ctx, n, names)
	if err != nil {
		return nil, "", err
	}
	if cur.Done && len(cur.Pending) == 0 {
		return entries, "", nil
	}
	return entries, encodeCursor(cur), nil
}

// inspectAll reads many locks in one round trip, dropping those that were
// released since they were found.
func inspectAll(ctx context.Context, n *node, names []string) ([]Entry, error) {
	if len(names) == 0 {
		return nil, nil
	}
	pipe := n.client.Pipeline()
	cmds := make([]*redis.Cmd, len(names))
	for i, name := range names {
		cmds[i] = inspectScript.Eval(ctx, pipe, []string{KeyPrefix + name, metaPrefix + name})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, &kindError{ErrUnavailable, fmt.Errorf("lock: list: %w", err)}
	}
	entries := make([]Entry, 0, len(names))
	for i, c := range cmds {
		res, _ := c.Slice()
		in, err := inspectedFrom(res)
		if err != nil {
			return nil, err
		}
		if in.value != "" {
			entries = append(entries, Entry{Name: names[i], Holder: in.h})
		}
	}
	return entries, nil
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

// listNode is the first node in quorums, or nil.
func (m *Manager) listNode() *node {
	for _, n := range m.nodes {
		if !n.isOut() {
			return n
		}
	}
	return nil
}
