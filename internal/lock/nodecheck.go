package lock

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The oldest Redis lockd runs on. The acquire and raise scripts rewrite a
// held lock's value with SET ... KEEPTTL, which Redis 6.0 added; on an
// older Redis those scripts fail on the first contended acquire. Nothing
// else needs as much: the events stream (XADD MAXLEN ~, XREAD, XREVRANGE)
// is Redis 5.0, and redsync's SET NX PX and scripts are 2.6.12.
const (
	minRedisMajor = 6
	minRedisMinor = 0
)

// minRedis names minRedisMajor.minRedisMinor in messages.
var minRedis = fmt.Sprintf("%d.%d", minRedisMajor, minRedisMinor)

// refusal says why lockd does not count a node as ready: its Redis may
// drop held locks by design, or cannot run lockd's scripts. Its message
// names the setting, its value and the fix, for /readyz and the log.
type refusal struct {
	setting string // a Redis setting or INFO field, or "INFO" itself
	value   string
	why     string
	fix     string
}

func (r *refusal) Error() string {
	return r.setting + " is " + r.value + ": " + r.why + "; fix: " + r.fix
}

// checkPolicy refuses every maxmemory-policy but noeviction. Lock keys
// carry a TTL, so the volatile-* policies pick them first when memory runs
// short, and allkeys-* may pick them or a fence counter: either way a held
// lock is silently gone and a second client can take it. With noeviction
// a full Redis refuses writes instead, and acquisitions fail with 503.
func checkPolicy(policy string) *refusal {
	const fix = "set maxmemory-policy noeviction (in redis.conf, with CONFIG SET, or in a managed Redis's parameter group)"
	switch policy {
	case "noeviction":
		return nil
	case "":
		return &refusal{setting: "maxmemory_policy", value: "missing from INFO memory",
			why: "lockd cannot tell whether Redis evicts held locks", fix: fix}
	}
	return &refusal{setting: "maxmemory-policy", value: policy,
		why: "Redis may evict keys, held locks among them, when memory runs short", fix: fix}
}

// checkVersion refuses a Redis older than minRedis, and a version it
// cannot read: "7.2.4", "6.0.0" and "255.255.255" (an unstable build)
// read; anything without a numeric major and minor does not.
func checkVersion(version string) *refusal {
	fix := "upgrade to Redis " + minRedis + " or later"
	major, minor, ok := parseVersion(version)
	switch {
	case version == "":
		return &refusal{setting: "redis_version", value: "missing from INFO server",
			why: "lockd cannot tell whether its scripts run there (they need Redis " + minRedis + ")", fix: fix}
	case !ok:
		return &refusal{setting: "redis_version", value: strconv.Quote(version),
			why: "lockd cannot read it, so cannot tell whether its scripts run there (they need Redis " + minRedis + ")", fix: fix}
	case major < minRedisMajor || major == minRedisMajor && minor < minRedisMinor:
		return &refusal{setting: "redis_version", value: version,
			why: "lockd's scripts need Redis " + minRedis + " or later (SET ... KEEPTTL)", fix: fix}
	}
	return nil
}

// parseVersion reads the major and minor numbers of "major.minor[.patch]".
func parseVersion(v string) (major, minor int, ok bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || major < 0 || minor < 0 {
		return 0, 0, false
	}
	return major, minor, true
}

// infoFields reads the "field:value" lines of an INFO reply.
func infoFields(info string) map[string]string {
	f := map[string]string{}
	for _, line := range strings.Split(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(k, "#") {
			f[k] = v
		}
	}
	return f
}

// readRefusal reads a node's version and eviction policy from INFO and
// returns why lockd refuses the node, or nil when it is fit for locks; the
// error is set when the node could not be asked. It reads INFO, not CONFIG
// GET: lockd's ACL user need not have CONFIG (it would hand out
// requirepass), and managed Redis services often forbid it, while INFO is
// answered everywhere. Two single-section INFOs, pipelined: Redis before
// 7.0 takes one section per call, and an old Redis is what the version
// check is for.
func readRefusal(ctx context.Context, c redis.Cmdable) (*refusal, error) {
	var server, memory *redis.StringCmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		server = p.Info(ctx, "server")
		memory = p.Info(ctx, "memory")
		return nil
	})
	if err != nil && strings.HasPrefix(err.Error(), "NOPERM") {
		return &refusal{setting: "INFO", value: "not permitted (" + err.Error() + ")",
			why: "lockd reads redis_version and maxmemory_policy from it",
			fix: "allow lockd's Redis user +info"}, nil
	}
	if err != nil {
		return nil, err
	}
	if r := checkVersion(infoFields(server.Val())["redis_version"]); r != nil {
		return r, nil
	}
	return checkPolicy(infoFields(memory.Val())["maxmemory_policy"]), nil
}

// checkNode asks n whether it is fit for locks, records the answer and
// logs when it changes (see noteRefusal). It returns the *refusal when n
// is refused, or the error that kept it from asking.
func (m *Manager) checkNode(ctx context.Context, n *node) error {
	r, err := readRefusal(ctx, n.client)
	if err != nil {
		return err
	}
	m.noteRefusal(n, r)
	if r != nil {
		return r
	}
	return nil
}

// noteRefusal records whether n is refused and logs a change: an error
// naming the setting, its value and the fix when n becomes refused (or
// for another reason), and a note when it is fit again. Repeated checks
// with the same answer log nothing.
func (m *Manager) noteRefusal(n *node, r *refusal) {
	why := ""
	if r != nil {
		why = r.Error()
	}
	n.mu.Lock()
	changed := n.refused != why
	n.refused = why
	n.mu.Unlock()
	switch {
	case changed && r != nil:
		m.log.Error("Redis node refused: it can lose locks or cannot run lockd's scripts", "node", n.index, "addr", n.addr,
			"setting", r.setting, "value", r.value, "fix", r.fix, "err", why)
	case changed:
		m.log.Info("Redis node fit for locks again", "node", n.index, "addr", n.addr)
	}
}
