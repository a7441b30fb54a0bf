package logformat_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"strings"
	"testing"

	"k8s.io/klog/v2"

	"github.com/spindle-net/spindle/ipam/logformat"
)

// flags registers --log-format and klog's flags the way the daemons do.
func flags(f *logformat.Format) *flag.FlagSet {
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	logformat.AddFlag(fs, f)
	klog.InitFlags(fs)
	return fs
}

func TestFlag(t *testing.T) {
	var f logformat.Format
	if err := flags(&f).Parse(nil); err != nil || f != logformat.Text {
		t.Fatalf("default: %q %v, want text", f, err)
	}
	for _, v := range []string{"text", "json"} {
		if err := flags(&f).Parse([]string{"--log-format=" + v}); err != nil || string(f) != v {
			t.Errorf("--log-format=%s: %q %v", v, f, err)
		}
	}
	err := flags(&f).Parse([]string{"--log-format=JSON"})
	if err == nil || !strings.Contains(err.Error(), "-log-format") || !strings.Contains(err.Error(), "not text or json") {
		t.Errorf("--log-format=JSON: error %v, want one naming the flag and the choices", err)
	}
}

// TestJSON switches the process's klog to JSON (once: the setting is
// global) and checks that log lines become JSON objects with the key/value
// pairs as fields, filtered by -v.
func TestJSON(t *testing.T) {
	var f logformat.Format
	fs := flags(&f)
	if err := fs.Parse([]string{"--log-format=json", "-v=2"}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := f.Apply(fs, &out); err != nil {
		t.Fatal(err)
	}
	log := klog.Background()
	log.Info("ADD", "pod", "default/web-0", "addresses", []string{"10.6.0.5/16"})
	log.V(2).Info("shown at -v=2")
	log.V(3).Info("hidden at -v=2")
	klog.Flush()

	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		msgs = append(msgs, m["msg"].(string))
		if m["msg"] == "ADD" && (m["pod"] != "default/web-0" || m["addresses"].([]any)[0] != "10.6.0.5/16") {
			t.Errorf("fields lost: %s", line)
		}
	}
	if got := strings.Join(msgs, "|"); got != "ADD|shown at -v=2" {
		t.Errorf("messages %q, want ADD and the -v=2 line", got)
	}
}

func TestTextLeavesKlogAlone(t *testing.T) {
	var f logformat.Format
	fs := flags(&f)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := f.Apply(fs, &out); err != nil || out.Len() != 0 {
		t.Fatalf("text: %v %q", err, out.String())
	}
}
