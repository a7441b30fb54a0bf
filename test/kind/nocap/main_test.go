package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestDropCapsKeepsTheRestOfTheConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	in := `{"ociVersion":"1.2.0","process":{"args":["/sbin/init"],"capabilities":{` +
		`"bounding":["CAP_CHOWN","CAP_SYS_RESOURCE"],"effective":["CAP_SYS_RESOURCE","CAP_NET_ADMIN"],"ambient":[]}},"hostname":"n1"}`
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := dropCaps(path, []string{"CAP_SYS_RESOURCE"}, processOfConfig); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		OCIVersion string `json:"ociVersion"`
		Hostname   string `json:"hostname"`
		Process    struct {
			Args         []string            `json:"args"`
			Capabilities map[string][]string `json:"capabilities"`
		} `json:"process"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.OCIVersion != "1.2.0" || got.Hostname != "n1" || len(got.Process.Args) != 1 {
		t.Errorf("other fields changed: %s", raw)
	}
	want := map[string][]string{"bounding": {"CAP_CHOWN"}, "effective": {"CAP_NET_ADMIN"}, "ambient": {}}
	for set, caps := range want {
		if len(got.Process.Capabilities[set]) != len(caps) || (len(caps) > 0 && got.Process.Capabilities[set][0] != caps[0]) {
			t.Errorf("capabilities[%s] = %v, want %v", set, got.Process.Capabilities[set], caps)
		}
	}
}

func TestFlagArg(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--root", "/r", "create", "--bundle", "/b", "id"}, "/b"},
		{[]string{"create", "-b", "/c", "id"}, "/c"},
		{[]string{"create", "--bundle=/d", "id"}, "/d"},
		{[]string{"state", "id"}, ""},
		{[]string{"create", "--bundle"}, ""},
	} {
		if got := flagArg(tc.args, "--bundle", "-b"); got != tc.want {
			t.Errorf("flagArg(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestDropCapsOfAnExecProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "process.json")
	in := `{"args":["sh"],"capabilities":{"bounding":["CAP_SYS_RESOURCE","CAP_KILL"],"permitted":["CAP_SYS_RESOURCE"]}}`
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := dropCaps(path, []string{"CAP_SYS_RESOURCE"}, processItself); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var got struct {
		Args         []string            `json:"args"`
		Capabilities map[string][]string `json:"capabilities"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Args) != 1 || len(got.Capabilities["bounding"]) != 1 || got.Capabilities["bounding"][0] != "CAP_KILL" ||
		len(got.Capabilities["permitted"]) != 0 {
		t.Errorf("process after dropCaps: %s", raw)
	}
}
