package controllermanager

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parse(t *testing.T, args ...string) Options {
	t.Helper()
	var o Options
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestLabFlags(t *testing.T) {
	o := parse(t, "--webhook-host", "127.0.0.1", "--webhook-port", "9443", "--webhook-manage-configurations")
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	co := o.configOptions([]byte("ca"))
	if co.URL != "https://127.0.0.1:9443" || co.Service != nil {
		t.Fatalf("config options %+v", co)
	}
	dns, ips := o.certNames()
	if len(dns) != 0 || len(ips) != 1 || ips[0].String() != "127.0.0.1" {
		t.Fatalf("cert names %v %v", dns, ips)
	}
}

func TestServiceFlags(t *testing.T) {
	o := parse(t, "--webhook-service-name", "spindle-controller", "--webhook-service-namespace", "spindle", "--webhook-cert-secret", "spindle/spindle-webhook-cert")
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	co := o.configOptions([]byte("ca"))
	if co.URL != "" || co.Service == nil || co.Service.Name != "spindle-controller" || co.Service.Namespace != "spindle" || *co.Service.Port != 443 {
		t.Fatalf("config options %+v", co)
	}
	dns, _ := o.certNames()
	if strings.Join(dns, ",") != "spindle-controller.spindle.svc,spindle-controller.spindle.svc.cluster.local,spindle-controller.spindle" {
		t.Fatalf("dns names %v", dns)
	}
}

func TestFlagValidation(t *testing.T) {
	for args, want := range map[string]string{
		"--webhook-manage-configurations":    "--webhook-manage-configurations needs",
		"--webhook-failure-policy=Sometimes": `invalid --webhook-failure-policy "Sometimes"`,
		"--webhook-cert-secret=nonamespace":  `invalid --webhook-cert-secret "nonamespace"`,
		"--kube-api-qps=0":                   "invalid --kube-api-qps",
		"--webhook-timeout-seconds=31":       "invalid --webhook-timeout-seconds 31",
	} {
		o := parse(t, args)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %q", args, err, want)
		}
	}
	// The old flag names still work.
	o := parse(t, "--metrics-addr", ":1", "--health-addr", ":2")
	if o.MetricsAddr != ":1" || o.HealthAddr != ":2" {
		t.Fatalf("aliases: %q %q", o.MetricsAddr, o.HealthAddr)
	}
}

// Every flag is documented in docs/controller.md.
func TestEveryFlagIsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "controller.md"))
	if err != nil {
		t.Fatal(err)
	}
	var o Options
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	o.AddFlags(fs)
	fs.VisitAll(func(fl *flag.Flag) {
		if !strings.Contains(string(doc), "`--"+fl.Name+"`") {
			t.Errorf("flag --%s is not documented in docs/controller.md", fl.Name)
		}
	})
}

// FuzzValidate parses arbitrary flag values and validates them: no panic,
// and a refusal names the flag to fix.
func FuzzValidate(f *testing.F) {
	f.Add("--webhook-cert-secret=a/b", "--webhook-failure-policy=Fail", "--kube-api-qps=0")
	f.Add("--webhook-manage-configurations", "--webhook-host=::1", "--webhook-port=-1")
	f.Add("--webhook-cert-secret=/", "--webhook-timeout-seconds=0", "--gc-interval=-1s")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		var o Options
		fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o.AddFlags(fs)
		if fs.Parse([]string{a, b, c}) != nil {
			return
		}
		if err := o.Validate(); err != nil && !strings.Contains(err.Error(), "--") {
			t.Fatalf("%q %q %q: %v does not name a flag", a, b, c, err)
		}
	})
}
