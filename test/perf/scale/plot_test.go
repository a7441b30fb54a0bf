package main

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestNiceMax(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 0.7: 1, 1.2: 2, 19.7: 20, 23: 50, 101: 200, 480: 500} {
		if got := niceMax(in); got != want {
			t.Errorf("niceMax(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestWritePlot(t *testing.T) {
	cur := &results{RSS: []rssPoint{{Claims: 10000, RSSMiB: 60}, {Claims: 10000, Eligible: true, RSSMiB: 62}, {Claims: 100000, RSSMiB: 61}, {Claims: 100000, Eligible: true, RSSMiB: 80}},
		CPU: []cpuPoint{{Agents: 10, CPUMsPerAlloc: 11}, {Agents: 50, CPUMsPerAlloc: 11.5}, {Agents: 200, CPUMsPerAlloc: 12}}}
	base := &results{RSS: []rssPoint{{Claims: 10000, RSSMiB: 80}, {Claims: 100000, RSSMiB: 300}}, CPU: []cpuPoint{{Agents: 10, CPUMsPerAlloc: 11}, {Agents: 200, CPUMsPerAlloc: 20}}}
	path := filepath.Join(t.TempDir(), "plot.png")
	if err := writePlot(path, cur, base); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the plot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != plotW || b.Dy() != plotH {
		t.Fatalf("plot is %v, want %dx%d", b, plotW, plotH)
	}
	// Something beyond the white background was drawn in both panels.
	for _, x0 := range []int{70, 70 + panelW + 110} {
		drawn := 0
		for y := 90; y < 90+panelH; y++ {
			for x := x0 + 1; x < x0+panelW; x++ {
				if r, g, b, _ := img.At(x, y).RGBA(); r != g || g != b {
					drawn++
				}
			}
		}
		if drawn < 100 {
			t.Errorf("panel at x=%d has %d coloured pixels: no curves drawn", x0, drawn)
		}
	}
}
