package safety

import (
	"fmt"
	"strings"
	"time"
)

// Table renders rows as the markdown summary the suite prints: one line per
// scenario, violations per checker, and the recovery time after the fault.
func Table(rows []Row) string {
	var b strings.Builder
	b.WriteString("| scenario | mode | ops | grants | unknown | store rejects | fault | mutual exclusion | fences | store | counter | linearizable | recovery | time | result |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %s |", r.Scenario, r.Mode, r.Ops, r.Grants, r.Unknown, r.Rejected, r.Faults)
		for _, name := range checkers {
			n, ok := r.Violations[name]
			switch {
			case !ok:
				b.WriteString(" – |")
			case n < 0:
				b.WriteString(" no verdict |")
			default:
				fmt.Fprintf(&b, " %d |", n)
			}
		}
		rec := "never"
		if r.Recovery >= 0 {
			rec = r.Recovery.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, " %s | %.0fs | %s |\n", rec, r.Seconds, r.Result)
	}
	return b.String()
}
