package cniplugin

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// fakeAgent serves the protocol on a unix socket with canned answers.
func fakeAgent(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return sock
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b) //nolint:errcheck
}

func confFor(version, sock string) []byte {
	return []byte(`{"cniVersion":"` + version + `","name":"macvlan-vlan0","type":"macvlan","ipam":{"type":"spiderpool","socket":"` + sock + `","default_ipv4_ippool":["p4"]}}`)
}

const podArgs = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID=uid-1;K8S_POD_INFRA_CONTAINER_ID=c1"

func TestAddForwardsRequestAndPrintsResultForEveryVersion(t *testing.T) {
	var got nodeapi.Request
	sock := fakeAgent(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != nodeapi.PathAdd {
			t.Errorf("path %q", r.URL.Path)
		}
		json.NewDecoder(r.Body).Decode(&got) //nolint:errcheck
		writeJSON(w, 200, nodeapi.Result{Interface: "net1", IPs: []nodeapi.IP{
			{Address: "10.6.0.9/16", Gateway: "10.6.0.1", Version: 4, Pool: "p4"},
			{Address: "fd00::9/64", Version: 6, Pool: "p6"},
		}, Routes: []nodeapi.Route{{Dst: "0.0.0.0/0", GW: "10.6.0.1"}, {Dst: "10.7.0.0/16", GW: "10.6.0.254"}}})
	})
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			var printed types.Result
			var printedVersion string
			p := &Plugin{Print: func(r types.Result, ver string) error { printed, printedVersion = r, ver; return nil }}
			err := p.Add(&skel.CmdArgs{ContainerID: "c1", Netns: "/var/run/netns/x", IfName: "net1", Args: podArgs, StdinData: confFor(v, sock)})
			if err != nil {
				t.Fatal(err)
			}
			if got.PodNamespace != "default" || got.PodName != "web-0" || got.PodUID != "uid-1" || got.IfName != "net1" ||
				got.ContainerID != "c1" || got.NetworkName != "macvlan-vlan0" || strings.Join(got.DefaultIPv4Pools, ",") != "p4" {
				t.Fatalf("agent received %+v", got)
			}
			conv, err := printed.GetAsVersion(printedVersion)
			if err != nil {
				t.Fatalf("result not convertible to %s: %v", v, err)
			}
			var ips []string
			switch r := conv.(type) {
			case *current.Result:
				for _, ip := range r.IPs {
					ips = append(ips, ip.Address.String()+"@"+ip.Gateway.String())
				}
				if len(r.Routes) != 2 {
					t.Fatalf("routes %v", r.Routes)
				}
			case *types040.Result:
				for _, ip := range r.IPs {
					ips = append(ips, ip.Address.String()+"@"+ip.Gateway.String())
				}
			default:
				t.Fatalf("unexpected result type %T", conv)
			}
			if strings.Join(ips, " ") != "10.6.0.9/16@10.6.0.1 fd00::9/64@<nil>" {
				t.Fatalf("ips %v", ips)
			}
		})
	}
}

func TestAgentErrorsKeepTheirCNICode(t *testing.T) {
	sock := fakeAgent(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 409, nodeapi.ErrorResponse{Code: 11, Msg: `failed to allocate IPv4 address for pod "default/web-0"`, Details: `pool "b": 254/254 allocated`})
	})
	p := &Plugin{Print: func(types.Result, string) error { t.Fatal("printed a result on error"); return nil }}
	err := p.Add(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Args: podArgs, StdinData: confFor("1.0.0", sock)})
	var te *types.Error
	if !errors.As(err, &te) || te.Code != 11 || !strings.Contains(te.Details, "254/254") {
		t.Fatalf("got %#v", err)
	}
}

func TestDelFailsWhenAgentUnreachable(t *testing.T) {
	p := &Plugin{}
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	err := p.Del(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Args: podArgs, StdinData: confFor("1.0.0", sock)})
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrTryAgainLater {
		t.Fatalf("DEL must fail with code 11 when the release is unconfirmed, got %v", err)
	}
	// Without pod identity there is nothing to release.
	if err := p.Del(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: confFor("1.0.0", sock)}); err != nil {
		t.Fatalf("DEL without K8S args: %v", err)
	}
}

func TestCheckDetectsLostAddress(t *testing.T) {
	sock := fakeAgent(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, nodeapi.Result{Interface: "eth0", IPs: []nodeapi.IP{{Address: "10.6.0.9/16", Version: 4}}})
	})
	conf := func(addr string) []byte {
		return []byte(`{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{"type":"spiderpool","socket":"` + sock +
			`"},"prevResult":{"cniVersion":"1.0.0","ips":[{"address":"` + addr + `"}]}}`)
	}
	p := &Plugin{}
	if err := p.Check(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Args: podArgs, StdinData: conf("10.6.0.9/16")}); err != nil {
		t.Fatalf("intact allocation: %v", err)
	}
	err := p.Check(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Args: podArgs, StdinData: conf("10.6.0.10/16")})
	if err == nil || !strings.Contains(err.Error(), "10.6.0.10/16") {
		t.Fatalf("want error naming the lost address, got %v", err)
	}
}

func TestGCSendsValidAttachments(t *testing.T) {
	var got nodeapi.GCRequest
	sock := fakeAgent(t, func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&got) //nolint:errcheck
		writeJSON(w, 200, nodeapi.GCResult{})
	})
	conf := `{"cniVersion":"1.1.0","name":"n","type":"macvlan","ipam":{"type":"spiderpool","socket":"` + sock +
		`"},"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}`
	if err := (&Plugin{}).GC(&skel.CmdArgs{StdinData: []byte(conf)}); err != nil {
		t.Fatal(err)
	}
	if len(got.ValidAttachments) != 1 || got.ValidAttachments[0] != (nodeapi.Attachment{ContainerID: "c1", IfName: "eth0"}) {
		t.Fatalf("got %+v", got)
	}
}
