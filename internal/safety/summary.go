package safety

import (
	"fmt"
	"strings"
	"time"
)

// Table renders rows as the markdown summary the suite prints: one line per
// scenario, violations per checker ("–": it had nothing to look at), and
// the recovery time after the fault.
func Table(rows []Row) string {
	var b strings.Builder
	// A column per checker, in the order of checkers.
	b.WriteString("| scenario | mode | ops | grants | unknown | store rejects | fault |")
	for _, name := range checkers {
		fmt.Fprintf(&b, " %s |", strings.ReplaceAll(name, "-", " "))
	}
	b.WriteString(" recovery | time | result |\n|---|---|---:|---:|---:|---:|---|")
	b.WriteString(strings.Repeat("---:|", len(checkers)))
	b.WriteString("---:|---:|---|\n")
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
