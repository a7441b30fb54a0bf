// Command tiers counts what `make test` ran, per tier, and refuses a run in
// which a tier ran nothing.
//
// Tests are tagged with prereq.Tier (privileged, envtest, lab-e2e, kind); untagged
// tests are unit tests. Each stage of `make test` writes one counts file:
//
//	go test -json ./... | tiers gotest _out/tiers/unit.json
//	tiers ginkgo _out/tiers/e2e-report.json _out/tiers/e2e.json [TIER]
//	tiers summary _out/tiers/unit.json _out/tiers/e2e.json ...
//	tiers failures _out/tiers/e2e-report.json
//
// gotest reads a `go test -json` stream and prints what `go test` prints
// without -v (package results, the output of failed tests and build errors)
// plus one line per skipped test. ginkgo reads a Ginkgo JSON report and counts
// its specs as TIER (default lab-e2e); a spec the run's label filter left out
// is recorded by name, not counted as skipped. summary adds the files up,
// prints
//
//	tiers: unit 412 passed, envtest 61, privileged 9, lab-e2e 37, kind 2, kind-e2e 59, skipped 0
//
// and exits 1 if a tier ran no test, if any test failed, if a test was
// skipped under SPINDLE_REQUIRE_ALL=1, or if a spec one suite's label filter
// left out passed in no other (a spec runs on the lab or on kind, never on
// neither). failures prints each failed spec of a
// Ginkgo report with its location and message, so that a failure's cause is
// the last thing a failed run prints.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/spindle-net/spindle/test/prereq"
)

// Unit is the tier of a test that carries no tier marker.
const Unit = "unit"

// Order is the order tiers are printed in; summary requires each of them.
var Order = []string{Unit, prereq.Envtest, prereq.Privileged, prereq.LabE2E, prereq.Kind, prereq.KindE2E}

// Counts is what one stage ran.
type Counts struct {
	Passed  map[string]int `json:"passed"`
	Skipped int            `json:"skipped"`
	Failed  int            `json:"failed"`
	// PassedSpecs are the full texts of the Ginkgo specs that passed, and
	// Deselected those the suite's label filter left out: each must pass in
	// another stage.
	PassedSpecs []string `json:"passedSpecs,omitempty"`
	Deselected  []string `json:"deselected,omitempty"`
}

func newCounts() *Counts { return &Counts{Passed: map[string]int{}} }

func (c *Counts) add(o *Counts) {
	for t, n := range o.Passed {
		c.Passed[t] += n
	}
	c.Skipped += o.Skipped
	c.Failed += o.Failed
	c.PassedSpecs = append(c.PassedSpecs, o.PassedSpecs...)
	c.Deselected = append(c.Deselected, o.Deselected...)
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tiers:", err)
		os.Exit(1)
	}
}

const usage = "usage: tiers gotest OUT | ginkgo REPORT OUT [TIER] | failures REPORT | summary FILE [FILE]"

func run(args []string, in io.Reader, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch cmd, rest := args[0], args[1:]; {
	case cmd == "gotest" && len(rest) == 1:
		c, err := GoTest(in, out)
		if err != nil {
			return err
		}
		if err := write(rest[0], c); err != nil {
			return err
		}
		if c.Failed > 0 {
			return fmt.Errorf("%d test(s) failed", c.Failed)
		}
		return nil
	case cmd == "ginkgo" && (len(rest) == 2 || len(rest) == 3):
		tier := prereq.LabE2E
		if len(rest) == 3 {
			tier = rest[2]
		}
		f, err := os.Open(rest[0])
		if err != nil {
			return fmt.Errorf("Ginkgo report: %w (was the suite run with -ginkgo.json-report?)", err)
		}
		defer f.Close()
		c, err := Ginkgo(f, tier)
		if err != nil {
			return fmt.Errorf("Ginkgo report %s: %w", rest[0], err)
		}
		return write(rest[1], c)
	case cmd == "failures" && len(rest) == 1:
		f, err := os.Open(rest[0])
		if err != nil {
			return fmt.Errorf("Ginkgo report: %w", err)
		}
		defer f.Close()
		return Failures(f, out)
	case cmd == "summary" && len(rest) > 0:
		total := newCounts()
		for _, p := range rest {
			c, err := read(p)
			if err != nil {
				return err
			}
			total.add(c)
		}
		line, err := Summary(total, prereq.Required())
		fmt.Fprintln(out, line)
		return err
	}
	return fmt.Errorf("bad arguments %q: %s", args, usage)
}

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
}

type testState struct {
	action string
	tier   string
	output strings.Builder
}

type pkgState struct {
	tests map[string]*testState
	order []string
}

// GoTest reads a `go test -json` stream, echoes the useful part to out and
// counts the leaf tests (a test with subtests counts through its subtests)
// by tier. A subtest inherits the tier of its closest tagged ancestor.
func GoTest(in io.Reader, out io.Writer) (*Counts, error) {
	c := newCounts()
	pkgs := map[string]*pkgState{}
	pkgOf := func(name string) *pkgState {
		p := pkgs[name]
		if p == nil {
			p = &pkgState{tests: map[string]*testState{}}
			pkgs[name] = p
		}
		return p
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	seen := false
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event (go vet or the go command itself): show it.
			fmt.Fprintln(out, string(line))
			continue
		}
		seen = true
		switch {
		case e.Action == "build-output":
			fmt.Fprint(out, e.Output)
		case e.Action == "build-fail":
			c.Failed++
		case e.Test == "":
			// Package level: "ok", "FAIL", "? ... [no test files]", panics.
			if e.Action == "output" && !strings.HasPrefix(e.Output, "=== ") && !strings.HasPrefix(e.Output, "PASS\n") {
				fmt.Fprint(out, e.Output)
			}
			if e.Action == "fail" {
				p := pkgOf(e.Package)
				if !anyFailed(p) {
					c.Failed++ // a package that failed outside any test (panic, TestMain, timeout)
				}
			}
			if e.Action == "pass" || e.Action == "fail" || e.Action == "skip" {
				count(c, pkgOf(e.Package), out, e.Package)
				delete(pkgs, e.Package)
			}
		default:
			p := pkgOf(e.Package)
			t := p.tests[e.Test]
			if t == nil {
				t = &testState{}
				p.tests[e.Test] = t
				p.order = append(p.order, e.Test)
			}
			switch e.Action {
			case "output":
				t.output.WriteString(e.Output)
				if i := strings.Index(e.Output, prereq.TierMarker); i >= 0 {
					t.tier = strings.TrimSpace(e.Output[i+len(prereq.TierMarker):])
				}
			case "pass", "fail", "skip":
				t.action = e.Action
				if e.Action == "fail" {
					fmt.Fprint(out, t.output.String())
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for name, p := range pkgs {
		count(c, p, out, name) // a stream cut short
	}
	if !seen {
		return nil, errors.New("no `go test -json` events on standard input")
	}
	return c, nil
}

func anyFailed(p *pkgState) bool {
	for _, t := range p.tests {
		if t.action == "fail" {
			return true
		}
	}
	return false
}

// count adds the leaf tests of one package to c and reports its skips.
func count(c *Counts, p *pkgState, out io.Writer, pkg string) {
	names := append([]string(nil), p.order...)
	sort.Strings(names)
	for i, name := range names {
		if i+1 < len(names) && strings.HasPrefix(names[i+1], name+"/") {
			continue // has subtests: counted through them
		}
		t := p.tests[name]
		switch t.action {
		case "pass":
			c.Passed[tierOf(p, name)]++
		case "skip":
			c.Skipped++
			fmt.Fprintf(out, "SKIP %s %s: %s\n", pkg, name, skipReason(t.output.String()))
		case "fail":
			c.Failed++
		default:
			c.Failed++ // started and never finished (timeout, crash)
		}
	}
}

func tierOf(p *pkgState, name string) string {
	for {
		if t := p.tests[name]; t != nil && t.tier != "" {
			return t.tier
		}
		i := strings.LastIndex(name, "/")
		if i < 0 {
			return Unit
		}
		name = name[:i]
	}
}

// skipReason is the last log line of a skipped test (t.Skip's message).
func skipReason(output string) string {
	var last string
	for _, l := range strings.Split(output, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- ") || strings.Contains(l, prereq.TierMarker) {
			continue
		}
		last = l
	}
	return last
}

// Ginkgo counts the It specs of a Ginkgo JSON report as tier. A spec that
// the run's label filter left out (skipped, with no message of its own) is
// recorded in Deselected, not counted as skipped: summary checks that it
// passed in another stage.
func Ginkgo(in io.Reader, tier string) (*Counts, error) {
	var reports []types.Report
	if err := json.NewDecoder(in).Decode(&reports); err != nil {
		return nil, err
	}
	c := newCounts()
	c.Passed[tier] = 0
	for _, r := range reports {
		for _, s := range r.SpecReports {
			if s.LeafNodeType != types.NodeTypeIt {
				if s.State.Is(types.SpecStateFailureStates) {
					c.Failed++ // a failed BeforeSuite or AfterSuite fails the run
				}
				continue
			}
			name := specName(s)
			switch {
			case s.State == types.SpecStatePassed:
				c.Passed[tier]++
				c.PassedSpecs = append(c.PassedSpecs, name)
			case s.State == types.SpecStateSkipped && s.Failure.Message == "" && r.SuiteConfig.LabelFilter != "":
				c.Deselected = append(c.Deselected, name)
			case s.State.Is(types.SpecStateSkipped | types.SpecStatePending):
				c.Skipped++
			default:
				c.Failed++
			}
		}
	}
	return c, nil
}

// maxFailureMessage bounds what Failures prints of one message.
const maxFailureMessage = 4000

// Failures prints every failed spec of a Ginkgo JSON report: its full text,
// where it failed and the failure message (the assertion's actual values).
func Failures(in io.Reader, out io.Writer) error {
	var reports []types.Report
	if err := json.NewDecoder(in).Decode(&reports); err != nil {
		return err
	}
	for _, r := range reports {
		for _, s := range r.SpecReports {
			if !s.State.Is(types.SpecStateFailureStates) {
				continue
			}
			name := specName(s)
			if name == "" {
				name = s.LeafNodeType.String()
			}
			msg := s.Failure.Message
			if len(msg) > maxFailureMessage {
				msg = msg[:maxFailureMessage] + "\n[... cut]"
			}
			fmt.Fprintf(out, "---- %s: %s\n  at %s\n", s.State, name, s.Failure.Location)
			if s.Failure.FailureNodeLocation != (types.CodeLocation{}) && s.Failure.FailureNodeLocation != s.Failure.Location {
				fmt.Fprintf(out, "  in %s %s\n", s.Failure.FailureNodeType, s.Failure.FailureNodeLocation)
			}
			for _, l := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
				fmt.Fprintf(out, "  %s\n", l)
			}
		}
	}
	return nil
}

// specName is a spec's full text: its containers' and its own.
func specName(s types.SpecReport) string {
	return strings.TrimSpace(strings.Join(append(slices.Clone(s.ContainerHierarchyTexts), s.LeafNodeText), " "))
}

// Summary renders the tier line and says what is wrong with the run.
func Summary(c *Counts, requireAll bool) (string, error) {
	parts := make([]string, 0, len(Order)+2)
	var problems []string
	for i, t := range Order {
		n := c.Passed[t]
		if i == 0 {
			parts = append(parts, fmt.Sprintf("%s %d passed", t, n))
		} else {
			parts = append(parts, fmt.Sprintf("%s %d", t, n))
		}
		if n == 0 {
			problems = append(problems, fmt.Sprintf("tier %s ran no test", t))
		}
	}
	for t, n := range c.Passed {
		if !known(t) {
			parts = append(parts, fmt.Sprintf("%s %d", t, n))
			problems = append(problems, fmt.Sprintf("unknown tier %q (prereq.Tier takes %v)", t, Order[1:]))
		}
	}
	// A spec one suite left out must have passed in another.
	passed := map[string]bool{}
	for _, n := range c.PassedSpecs {
		passed[n] = true
	}
	var unrun []string
	for _, n := range c.Deselected {
		if !passed[n] {
			unrun = append(unrun, n)
		}
	}
	if len(unrun) > 0 {
		sort.Strings(unrun)
		problems = append(problems, fmt.Sprintf("%d spec(s) left out by a label filter passed in no other suite: %s", len(unrun), strings.Join(unrun, "; ")))
	}
	parts = append(parts, fmt.Sprintf("skipped %d", c.Skipped))
	if c.Failed > 0 {
		parts = append(parts, fmt.Sprintf("failed %d", c.Failed))
		problems = append(problems, fmt.Sprintf("%d test(s) failed", c.Failed))
	}
	if requireAll && c.Skipped > 0 {
		problems = append(problems, fmt.Sprintf("%d test(s) skipped under %s=1", c.Skipped, prereq.EnvRequireAll))
	}
	line := "tiers: " + strings.Join(parts, ", ")
	if len(problems) > 0 {
		return line, errors.New(strings.Join(problems, "; "))
	}
	return line, nil
}

func known(t string) bool {
	for _, o := range Order {
		if o == t {
			return true
		}
	}
	return false
}

func write(path string, c *Counts) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func read(path string) (*Counts, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("counts of a stage: %w (did every stage of make test run?)", err)
	}
	c := newCounts()
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
