package cniplugin

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

func addWith(t *testing.T, ipam string, answer nodeapi.Result) (*current.Result, *nodeapi.Request, error) {
	t.Helper()
	var got nodeapi.Request
	sock := fakeAgent(t, func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&got) //nolint:errcheck
		writeJSON(w, 200, answer)
	})
	conf := `{"cniVersion":"1.0.0","name":"db-net","type":"macvlan","ipam":{"socket":"` + sock + `",` + ipam + `}}`
	var printed types.Result
	p := &Plugin{Print: func(r types.Result, _ string) error { printed = r; return nil }}
	err := p.Add(&skel.CmdArgs{ContainerID: "c1", IfName: "net1", Args: podArgs, StdinData: []byte(conf)})
	if err != nil {
		return nil, &got, err
	}
	res, cerr := current.NewResultFromResult(printed)
	if cerr != nil {
		t.Fatal(cerr)
	}
	return res, &got, nil
}

var oneIP = nodeapi.Result{Interface: "net1", IPs: []nodeapi.IP{{Address: "10.188.1.0/16", Version: 4, Pool: "db.db-net.v4"}},
	DNS: &nodeapi.DNS{Nameservers: []string{"10.0.0.53"}}}

func TestAddSendsInlinePoolsAndResolvConf(t *testing.T) {
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver 10.96.0.10\nsearch svc.cluster.local\noptions ndots:5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, req, err := addWith(t, `"type":"spiderpool","etcdConfig":{"etcdURL":"https://x:2379"},"subnet":"10.188.0.0/16",
		"fixedStart":"10.188.0.10","fixedEnd":"10.188.0.255","rangeStart":"10.188.1.0","gateway":"10.188.0.1","resolvConf":"`+rc+`"`, oneIP)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(req.InlineIPv4Pools, ",") != "v4" || req.InlineIPv6Pools != nil {
		t.Errorf("agent received inline pools %v / %v, want [v4] (the fixed-only pool serves annotated pods only)", req.InlineIPv4Pools, req.InlineIPv6Pools)
	}
	if got := strings.Join(res.DNS.Nameservers, ",") + "|" + strings.Join(res.DNS.Search, ",") + "|" + strings.Join(res.DNS.Options, ","); got != "10.96.0.10|svc.cluster.local|ndots:5" {
		t.Errorf("result dns %+v: want the resolvConf file's", res.DNS)
	}
}

func TestAddDNSPrecedence(t *testing.T) {
	res, _, err := addWith(t, `"type":"spiderpool","default_ipv4_ippool":["p"],"dns":{"nameservers":["10.1.1.1"],"domain":"corp"}`, oneIP)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.DNS.Nameservers, ",") != "10.1.1.1" || res.DNS.Domain != "corp" {
		t.Errorf("explicit dns lost: %+v", res.DNS)
	}
	res, _, err = addWith(t, `"type":"spiderpool","default_ipv4_ippool":["p"]`, oneIP)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.DNS.Nameservers, ",") != "10.0.0.53" {
		t.Errorf("the pool's dns is not in the result: %+v", res.DNS)
	}
}

func TestAddErrorsNameTheNetworkAndKey(t *testing.T) {
	for _, tc := range []struct{ ipam, want string }{
		{`"type":"spiderpool","range":"10.1.0.0/24","exclude":["10.1.0.x"]`, `network "db-net" (its NetworkAttachmentDefinition's spec.config): ipam.exclude[0]: "10.1.0.x" is not a CIDR or an address`},
		{`"type":"spiderpool","subnet":"10.1.0.0/24","resolvConf":"/nonexistent/resolv.conf"`, `failed to read ipam.resolvConf "/nonexistent/resolv.conf" of network "db-net"`},
	} {
		_, _, err := addWith(t, tc.ipam, oneIP)
		var te *types.Error
		if !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg+": "+te.Details, tc.want) {
			t.Errorf("ADD with %s = %v, want code 7 and %q", tc.ipam, err, tc.want)
		}
	}
}

func TestDelIgnoresBadInlineRanges(t *testing.T) {
	sock := fakeAgent(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, struct{}{}) })
	conf := `{"cniVersion":"1.0.0","name":"n","ipam":{"type":"spiderpool","socket":"` + sock + `","range":"bad"}}`
	if err := (&Plugin{}).Del(&skel.CmdArgs{ContainerID: "c1", IfName: "net1", Args: podArgs, StdinData: []byte(conf)}); err != nil {
		t.Fatalf("DEL of a configuration whose ranges ADD refused: %v", err)
	}
}
