package plugin

import (
	"testing"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// Every parser of the plugin: no input panics, and what is accepted is
// consistent.

func FuzzSplitSubcommand(f *testing.F) {
	for _, s := range []string{"pools -o wide", "--context x why a/b", "-n\x00check", "--kubeconfig", "-- pools"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := splitArgs(s)
		sub, rest := SplitSubcommand(args)
		if sub != "" && len(rest) != len(args)-1 {
			t.Errorf("%q: sub %q rest %q", args, sub, rest)
		}
	})
}

func splitArgs(s string) []string {
	var out []string
	cur := ""
	for _, r := range s {
		if r == ' ' || r == 0 {
			out = append(out, cur)
			cur = ""
			continue
		}
		cur += string(r)
	}
	return append(out, cur)
}

func FuzzParsePodRef(f *testing.F) {
	for _, s := range []string{"ns/pod", "pod", "/", "a/b/c", "NS/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParsePodRef(s, "default")
		if err != nil {
			return
		}
		if again, err := ParsePodRef(r.String(), ""); err != nil || again != r {
			t.Errorf("%q -> %v does not round-trip: %v %v", s, r, again, err)
		}
	})
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"10.6.0.5", "fd00::5", "fd00-0000-0000-0000-0000-0000-0000-0005", "::ffff:1.2.3.4", "1.2.3.4/8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		name := v2beta1.ClaimName(a)
		if b, err := ParseAddress(name); err != nil || b != a {
			t.Errorf("%q -> %v -> claim %q -> %v %v", s, a, name, b, err)
		}
	})
}

func FuzzParseReport(f *testing.F) {
	f.Add(`{"findings":[{"kind":"leaked","address":"10.6.0.5","claim":"10.6.0.5","claimUID":"u"}]}`)
	f.Add(`{"findings":[{"kind":"lost","address":"x"}]}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, s string) {
		targets, err := ParseReport([]byte(s))
		if err != nil {
			return
		}
		for _, tg := range targets {
			if tg.UID == "" {
				t.Errorf("%q: target %v without UID", s, tg)
			}
			if _, err := v2beta1.ParseClaimName(tg.Claim); err != nil {
				t.Errorf("%q: target %v: %v", s, tg, err)
			}
		}
	})
}

func FuzzNetworkIPAM(f *testing.F) {
	f.Add(spiderpoolNAD)
	f.Add(`{"plugins":[{"ipam":{"type":"spiderpool"}}]}`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, s string) {
		known, served, _, _, err := NetworkIPAM(s)
		if err == nil && served && !known {
			t.Errorf("%q: served but not known", s)
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
	f.Add("kind: CronJob\nmetadata: {name: c, namespace: x}\nspec: {jobTemplate: {spec: {template: {metadata: {labels: {a: b}}}}}}\n")
	f.Add("kind: StatefulSet\nmetadata: {name: s}\nspec: {ordinals: {start: 3}}\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseManifest([]byte(s), "ns")
		if err != nil {
			return
		}
		if m.Pod == nil || m.Pod.Namespace == "" || m.Pod.Name == "" {
			t.Errorf("%q: incomplete pod %+v", s, m.Pod)
		}
	})
}
