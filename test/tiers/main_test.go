package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/spindle-net/spindle/test/prereq"
)

// stream builds a `go test -json` stream from (action, package, test, output) rows.
func stream(t *testing.T, rows ...[4]string) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	for _, r := range rows {
		line, err := json.Marshal(event{Action: r[0], Package: r[1], Test: r[2], Output: r[3]})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	return &b
}

func TestGoTestCountsLeavesByTier(t *testing.T) {
	in := stream(t,
		[4]string{"run", "p/a", "TestPure", ""},
		[4]string{"pass", "p/a", "TestPure", ""},
		[4]string{"run", "p/a", "TestNetns", ""},
		[4]string{"output", "p/a", "TestNetns", "    x_test.go:9: " + prereq.TierMarker + prereq.Privileged + "\n"},
		[4]string{"run", "p/a", "TestNetns/v4", ""},
		[4]string{"pass", "p/a", "TestNetns/v4", ""},
		[4]string{"run", "p/a", "TestNetns/v6", ""},
		[4]string{"pass", "p/a", "TestNetns/v6", ""},
		[4]string{"pass", "p/a", "TestNetns", ""},
		[4]string{"run", "p/a", "TestLaptop", ""},
		[4]string{"output", "p/a", "TestLaptop", "    y_test.go:3: needs root\n"},
		[4]string{"output", "p/a", "TestLaptop", "--- SKIP: TestLaptop (0.00s)\n"},
		[4]string{"skip", "p/a", "TestLaptop", ""},
		[4]string{"output", "p/a", "", "ok  \tp/a\t0.1s\n"},
		[4]string{"pass", "p/a", "", ""},
		[4]string{"run", "p/b", "TestAPI", ""},
		[4]string{"output", "p/b", "TestAPI", "    z_test.go:1: " + prereq.TierMarker + prereq.Envtest + "\n"},
		[4]string{"output", "p/b", "TestAPI", "    z_test.go:2: pool refused\n"},
		[4]string{"fail", "p/b", "TestAPI", ""},
		[4]string{"output", "p/b", "", "FAIL\tp/b\t2.0s\n"},
		[4]string{"fail", "p/b", "", ""},
	)
	var out bytes.Buffer
	c, err := GoTest(in, &out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Passed[Unit] != 1 || c.Passed[prereq.Privileged] != 2 || c.Skipped != 1 || c.Failed != 1 {
		t.Errorf("counts = %+v, want unit 1, privileged 2 (two subtests), skipped 1, failed 1", c)
	}
	for _, want := range []string{"ok  \tp/a", "SKIP p/a TestLaptop: y_test.go:3: needs root", "pool refused", "FAIL\tp/b"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestGoTestCountsUnfinishedAndCrashedPackages(t *testing.T) {
	in := stream(t,
		[4]string{"run", "p/a", "TestHangs", ""},
		[4]string{"output", "p/a", "", "panic: test timed out after 1s\n"},
		[4]string{"fail", "p/a", "", ""},
	)
	c, err := GoTest(in, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Failed == 0 {
		t.Errorf("a test cut off by a timeout was not counted as failed: %+v", c)
	}
	if _, err := GoTest(strings.NewReader("not json\n"), &bytes.Buffer{}); err == nil {
		t.Error("a stream without events was accepted")
	}
}

func TestGinkgoCountsItSpecs(t *testing.T) {
	reports := []types.Report{{SpecReports: types.SpecReports{
		{LeafNodeType: types.NodeTypeBeforeSuite, State: types.SpecStatePassed},
		{LeafNodeType: types.NodeTypeIt, State: types.SpecStatePassed},
		{LeafNodeType: types.NodeTypeIt, State: types.SpecStatePassed},
		{LeafNodeType: types.NodeTypeIt, State: types.SpecStateSkipped},
		{LeafNodeType: types.NodeTypeIt, State: types.SpecStateFailed},
	}}}
	b, err := json.Marshal(reports)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Ginkgo(bytes.NewReader(b), prereq.LabE2E)
	if err != nil {
		t.Fatal(err)
	}
	if c.Passed[prereq.LabE2E] != 2 || c.Skipped != 1 || c.Failed != 1 {
		t.Errorf("counts = %+v, want lab-e2e 2, skipped 1, failed 1", c)
	}
}

// A spec the label filter leaves out is no skip, but summary fails the run
// unless it passed in the other suite; a spec skipped at run time (with its
// reason) stays a skip.
func TestGinkgoLabelFilterSplitsTheSuite(t *testing.T) {
	spec := func(text string, state types.SpecState, msg string) types.SpecReport {
		return types.SpecReport{LeafNodeType: types.NodeTypeIt, ContainerHierarchyTexts: []string{"pools"}, LeafNodeText: text, State: state, Failure: types.Failure{Message: msg}}
	}
	report := func(filter string, specs ...types.SpecReport) *Counts {
		t.Helper()
		b, err := json.Marshal([]types.Report{{SuiteConfig: types.SuiteConfig{LabelFilter: filter}, SpecReports: specs}})
		if err != nil {
			t.Fatal(err)
		}
		tier := prereq.KindE2E
		if filter == "lab-only" {
			tier = prereq.LabE2E
		}
		c, err := Ginkgo(bytes.NewReader(b), tier)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	lab := report("lab-only", spec("gc race", types.SpecStatePassed, ""), spec("churn", types.SpecStateSkipped, ""))
	kind := report("!lab-only", spec("gc race", types.SpecStateSkipped, ""), spec("churn", types.SpecStatePassed, ""))
	if lab.Skipped != 0 || kind.Skipped != 0 || len(lab.Deselected) != 1 || len(kind.Deselected) != 1 {
		t.Fatalf("lab %+v, kind %+v: want one deselected spec each and no skip", lab, kind)
	}
	base := map[string]int{Unit: 1, prereq.Envtest: 1, prereq.Privileged: 1, prereq.Kind: 1}
	total := &Counts{Passed: maps.Clone(base)}
	total.add(lab)
	total.add(kind)
	line, err := Summary(total, true)
	if err != nil || !strings.Contains(line, "lab-e2e 1, kind 1, kind-e2e 1, skipped 0") {
		t.Errorf("both halves ran: Summary = %q, %v", line, err)
	}

	// The kind suite failed to run "churn" at all: nothing passed it.
	kindLost := report("!lab-only", spec("gc race", types.SpecStateSkipped, ""), spec("other", types.SpecStatePassed, ""))
	total = &Counts{Passed: maps.Clone(base)}
	total.add(lab)
	total.add(kindLost)
	if _, err := Summary(total, true); err == nil || !strings.Contains(err.Error(), "passed in no other suite: pools churn") {
		t.Errorf("a spec left out of both suites: err = %v", err)
	}

	// A skip at run time is counted as one, filter or not.
	skipped := report("!lab-only", spec("churn", types.SpecStateSkipped, "needs the lab"))
	if skipped.Skipped != 1 || len(skipped.Deselected) != 0 {
		t.Errorf("a run-time skip: %+v", skipped)
	}
}

func TestSummary(t *testing.T) {
	all := &Counts{Passed: map[string]int{Unit: 412, prereq.Envtest: 61, prereq.Privileged: 9, prereq.LabE2E: 37, prereq.Kind: 1, prereq.KindE2E: 59}}
	line, err := Summary(all, true)
	if err != nil || line != "tiers: unit 412 passed, envtest 61, privileged 9, lab-e2e 37, kind 1, kind-e2e 59, skipped 0" {
		t.Errorf("Summary = %q, %v", line, err)
	}

	noLab := &Counts{Passed: map[string]int{Unit: 5, prereq.Envtest: 1, prereq.Privileged: 1}}
	if _, err := Summary(noLab, false); err == nil || !strings.Contains(err.Error(), "tier lab-e2e ran no test") {
		t.Errorf("a run without lab tests: err = %v", err)
	}

	skipped := &Counts{Passed: all.Passed, Skipped: 2}
	if _, err := Summary(skipped, false); err != nil {
		t.Errorf("skips without the switch must pass: %v", err)
	}
	if _, err := Summary(skipped, true); err == nil || !strings.Contains(err.Error(), "2 test(s) skipped") {
		t.Errorf("skips under the switch: err = %v", err)
	}

	noKind := &Counts{Passed: map[string]int{Unit: 5, prereq.Envtest: 1, prereq.Privileged: 1, prereq.LabE2E: 1}}
	if _, err := Summary(noKind, false); err == nil || !strings.Contains(err.Error(), "tier kind ran no test") {
		t.Errorf("a run without the kind cluster: err = %v", err)
	}

	typo := &Counts{Passed: map[string]int{Unit: 1, prereq.Envtest: 1, prereq.Privileged: 1, prereq.LabE2E: 1, prereq.Kind: 1, "lab": 3}}
	if _, err := Summary(typo, false); err == nil || !strings.Contains(err.Error(), `unknown tier "lab"`) {
		t.Errorf("an unknown tier: err = %v", err)
	}
}

func TestFailuresPrintsFailedSpecsWithTheirMessage(t *testing.T) {
	reports := []types.Report{{SpecReports: types.SpecReports{
		{LeafNodeType: types.NodeTypeIt, State: types.SpecStatePassed, LeafNodeText: "works"},
		{LeafNodeType: types.NodeTypeIt, State: types.SpecStateFailed, ContainerHierarchyTexts: []string{"kubectl spindle"}, LeafNodeText: "check finds a leak",
			Failure: types.Failure{Message: "Expected\n    <[]map>: []\nto contain leaked", Location: types.CodeLocation{FileName: "plugin_test.go", LineNumber: 272}}},
		{LeafNodeType: types.NodeTypeAfterSuite, State: types.SpecStatePanicked, Failure: types.Failure{Message: "boom"}},
	}}}
	b, err := json.Marshal(reports)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Failures(bytes.NewReader(b), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"---- failed: kubectl spindle check finds a leak\n  at plugin_test.go:272\n", "    <[]map>: []\n", "to contain leaked", "---- panicked: AfterSuite", "  boom\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "works") {
		t.Errorf("a passed spec is listed:\n%s", got)
	}
}
