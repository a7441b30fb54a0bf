package selection

import (
	"fmt"
	"strings"
	"testing"

	"github.com/spindle-net/spindle/ipam/ranges"
)

// A pod naming 10,000 pools that do not exist got a 2,000-character error
// cut off in the middle of a pool name; it names the first ten and counts
// the rest.
func TestNoPoolErrorListsAtMostTenPools(t *testing.T) {
	e := &NoPoolError{Interface: "eth0", Family: ranges.V4}
	for i := range 10000 {
		e.Rejected = append(e.Rejected, RejectedPool{Name: fmt.Sprintf("missing-%05d", i), Reason: "not found"})
	}
	msg := e.Error()
	if !strings.HasSuffix(msg, `pool "missing-00009": not found; and 9990 more pools rejected`) || strings.Contains(msg, "missing-00010") {
		t.Fatalf("error: %s", msg)
	}
}
