package main

import (
	"testing"
	"time"
)

func TestParseCPU(t *testing.T) {
	// A command name with spaces and a parenthesis must not shift fields.
	stat := "4242 (kube apiserver) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 9 0 12345 1000 200 18446744073709551615"
	got, err := parseCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 281 * 10 * time.Millisecond; got != want {
		t.Fatalf("parseCPU = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x 1 0"} {
		if _, err := parseCPU(bad); err == nil {
			t.Errorf("parseCPU(%q) gave no error", bad)
		}
	}
}

func TestParseStatusKiB(t *testing.T) {
	status := "Name:\tspindle-agent\nVmHWM:\t  81234 kB\nVmRSS:\t   40960 kB\n"
	if v, err := parseStatusKiB(status, "VmRSS"); err != nil || v != 40960 {
		t.Fatalf("VmRSS = %d, %v", v, err)
	}
	if v, err := parseStatusKiB(status, "VmHWM"); err != nil || v != 81234 {
		t.Fatalf("VmHWM = %d, %v", v, err)
	}
	if _, err := parseStatusKiB(status, "VmSwap"); err == nil {
		t.Fatal("missing key gave no error")
	}
	if _, err := parseStatusKiB("VmRSS: 12 MB\n", "VmRSS"); err == nil {
		t.Fatal("unexpected unit gave no error")
	}
}

func TestCmdlineHas(t *testing.T) {
	argv := []string{"/x/kube-apiserver", "--secure-port=4242", "--etcd-servers=http://127.0.0.1:1"}
	if !cmdlineHas(argv, []string{"--secure-port=4242"}) {
		t.Fatal("want a match")
	}
	if cmdlineHas(argv, []string{"--secure-port=424"}) {
		t.Fatal("want no match for another port")
	}
}
