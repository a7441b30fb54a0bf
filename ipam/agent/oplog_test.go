package agent

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// render writes l through a logr sink that prints lines the way a JSON
// logger sees them: message plus the key/value pairs.
func render(l opLine) []string {
	var lines []string
	log := funcr.NewJSON(func(obj string) { lines = append(lines, obj) }, funcr.Options{})
	l.log(log)
	return lines
}

func TestOpLine(t *testing.T) {
	req := &nodeapi.Request{PodNamespace: "default", PodName: "web-0", IfName: "net1", ContainerID: "c1"}
	claim := func(addr, pool string) *v2beta1.SpiderIPClaim {
		return v2beta1.NewClaim(netip.MustParseAddr(addr), v2beta1.IPClaimSpec{Pool: pool})
	}
	for _, tt := range []struct {
		name string
		line func() opLine
		want string
	}{{
		name: "ADD",
		line: func() opLine {
			l := opLine{op: "ADD", req: req, duration: 1234567 * time.Nanosecond}
			l.withResult(&nodeapi.Result{IPs: []nodeapi.IP{{Address: "10.6.0.5/16", Pool: "v4"}, {Address: "fd00::5/64", Pool: "v6"}}})
			return l
		},
		want: `{"logger":"","level":0,"msg":"ADD","pod":"default/web-0","interface":"net1","containerID":"c1","addresses":["10.6.0.5/16","fd00::5/64"],"pools":["v4","v6"],"duration":"1.235ms"}`,
	}, {
		name: "failed ADD",
		line: func() opLine {
			return opLine{op: "ADD", req: req, duration: 3 * time.Millisecond, err: errors.New(`pool "v4": 10/10 allocated`)}
		},
		want: `{"logger":"","msg":"ADD failed","error":"pool \"v4\": 10/10 allocated","pod":"default/web-0","interface":"net1","containerID":"c1","addresses":[],"pools":[],"duration":"3ms"}`,
	}, {
		name: "DEL of two addresses of one pool",
		line: func() opLine {
			l := opLine{op: "DEL", req: req, outcome: delReleased, duration: time.Millisecond}
			l.withClaims([]*v2beta1.SpiderIPClaim{claim("10.6.0.5", "ds"), claim("fd00::5", "ds")})
			return l
		},
		want: `{"logger":"","level":0,"msg":"DEL","pod":"default/web-0","interface":"net1","containerID":"c1","addresses":["10.6.0.5","fd00::5"],"pools":["ds"],"outcome":"released","duration":"1ms"}`,
	}, {
		name: "DEL with nothing allocated",
		line: func() opLine { return opLine{op: "DEL", req: req, outcome: delNone, duration: 40 * time.Microsecond} },
		want: `{"logger":"","level":0,"msg":"DEL","pod":"default/web-0","interface":"net1","containerID":"c1","addresses":[],"pools":[],"outcome":"none","duration":"40µs"}`,
	}} {
		t.Run(tt.name, func(t *testing.T) {
			lines := render(tt.line())
			if len(lines) != 1 || lines[0] != tt.want {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), tt.want)
			}
		})
	}
}
