package version

import (
	"flag"
	"strings"
	"testing"
)

func TestStringAndAbout(t *testing.T) {
	old := Version
	Version = "1.2.3"
	defer func() { Version = old }()
	if s := String("spindle-agent"); !strings.HasPrefix(s, "spindle-agent 1.2.3 (commit ") {
		t.Errorf("String = %q", s)
	}
	if s := About("spiderpool IPAM"); !strings.HasPrefix(s, "spiderpool IPAM, version 1.2.3 (commit ") {
		t.Errorf("About = %q", s)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	v := Flag(fs)
	if err := fs.Parse([]string{"--version"}); err != nil || !*v {
		t.Errorf("--version: parsed %v, err %v", *v, err)
	}
}
