package framework

import (
	"net/netip"
	"testing"
)

func TestParseTableKeepsEmptyCells(t *testing.T) {
	out := `NAME       VERSION   SUBNET          ALLOCATED-IP-COUNT   TOTAL-IP-COUNT   DEFAULT   NODENAME
pool-a     4         172.30.0.0/16   2                    25602            false     
pool-bb    6         fd30::/64                            10               true      ["n1"]
`
	rows := ParseTable(out)
	if len(rows) != 2 {
		t.Fatalf("got %d rows, want 2: %v", len(rows), rows)
	}
	if r := rows[0]; r["NAME"] != "pool-a" || r["ALLOCATED-IP-COUNT"] != "2" || r["TOTAL-IP-COUNT"] != "25602" || r["NODENAME"] != "" {
		t.Errorf("row 0 = %v", r)
	}
	if r := rows[1]; r["ALLOCATED-IP-COUNT"] != "" || r["TOTAL-IP-COUNT"] != "10" || r["DEFAULT"] != "true" || r["NODENAME"] != `["n1"]` {
		t.Errorf("row 1 = %v", r)
	}
	if rows := ParseTable(""); rows != nil {
		t.Errorf("empty output gave %v", rows)
	}
}

func TestInIPList(t *testing.T) {
	ips := []string{"10.0.0.5", "10.0.1.0-10.0.2.1", "fd00::10-fd00::1f"}
	for a, want := range map[string]bool{
		"10.0.0.5": true, "10.0.0.6": false, "10.0.1.0": true, "10.0.1.255": true, "10.0.2.1": true, "10.0.2.2": false,
		"fd00::1f": true, "fd00::20": false,
	} {
		if got := InIPList(ips, netip.MustParseAddr(a)); got != want {
			t.Errorf("InIPList(%s) = %v, want %v", a, got, want)
		}
	}
}

func TestUnderlayRanges(t *testing.T) {
	l := &Facts{UnderlayV4: netip.MustParsePrefix("172.30.0.0/16"), UnderlayV6: netip.MustParsePrefix("fd30:172:30::/64")}
	s, e, err := l.UnderlayRangeV4(120, 100, 20)
	if err != nil || s.String() != "172.30.120.100" || e.String() != "172.30.120.119" {
		t.Errorf("UnderlayRangeV4 = %s %s %v", s, e, err)
	}
	if _, _, err := l.UnderlayRangeV4(120, 250, 10); err == nil {
		t.Error("UnderlayRangeV4 beyond the /24 accepted")
	}
	s, e, err = l.UnderlayRangeV6(120, 100, 20)
	if err != nil || s.String() != "fd30:172:30::120:100" || e.String() != "fd30:172:30::120:113" {
		t.Errorf("UnderlayRangeV6 = %s %s %v", s, e, err)
	}
}
