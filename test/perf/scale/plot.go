package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
)

var (
	black = color.RGBA{0, 0, 0, 255}
	grey  = color.RGBA{150, 150, 150, 255}
	light = color.RGBA{225, 225, 225, 255}
	blue  = color.RGBA{31, 119, 180, 255}
	red   = color.RGBA{214, 39, 40, 255}
	green = color.RGBA{44, 160, 44, 255}
	amber = color.RGBA{255, 127, 14, 255}
)

// series is one curve of a panel; NaN values are not drawn.
type series struct {
	name   string
	c      color.RGBA
	dashed bool
	values []float64
}

// panel is one chart: categorical x, linear y from 0.
type panel struct {
	title, xLabel string
	x             []string
	series        []series
	target        float64 // a horizontal reference line (0: none)
	targetLabel   string
}

const (
	plotW, plotH = 1300, 560
	panelW       = 540
	panelH       = 380
	scale        = 2
)

// writePlot draws agent memory against claims and API server CPU per
// allocation against watching agents, this run solid and the baseline
// dashed.
func writePlot(path string, cur, base *results) error {
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)

	var claims []int
	for _, p := range cur.RSS {
		if !slices.Contains(claims, p.Claims) {
			claims = append(claims, p.Claims)
		}
	}
	slices.Sort(claims)
	rss := panel{title: "agent RSS, MiB", xLabel: "claims in the cluster", target: 100, targetLabel: "target 100 MiB"}
	for _, n := range claims {
		rss.x = append(rss.x, fmt.Sprint(n))
	}
	rssSeries := func(r *results, eligible bool) []float64 {
		var v []float64
		for _, n := range claims {
			p, ok := r.rss(n, eligible)
			v = append(v, pick(p.RSSMiB, ok))
		}
		return v
	}
	rss.series = append(rss.series,
		series{name: "now, pools of its node", c: blue, values: rssSeries(cur, true)},
		series{name: "now, other pools", c: green, values: rssSeries(cur, false)})
	if base != nil {
		rss.series = append(rss.series,
			series{name: "before, pools of its node", c: red, dashed: true, values: rssSeries(base, true)},
			series{name: "before, other pools", c: amber, dashed: true, values: rssSeries(base, false)})
	}

	cpu := panel{title: "API server CPU per allocation, ms", xLabel: "agents watching"}
	for _, p := range cur.CPU {
		cpu.x = append(cpu.x, fmt.Sprint(p.Agents))
	}
	cpuSeries := func(r *results) []float64 {
		var v []float64
		for _, p := range cur.CPU {
			q, ok := r.cpu(p.Agents)
			v = append(v, pick(q.CPUMsPerAlloc, ok))
		}
		return v
	}
	cpu.series = append(cpu.series, series{name: "now", c: blue, values: cpuSeries(cur)})
	if base != nil {
		cpu.series = append(cpu.series, series{name: "before", c: red, dashed: true, values: cpuSeries(base)})
	}
	if len(cur.CPU) > 0 {
		cpu.target, cpu.targetLabel = 1.5*cur.CPU[0].CPUMsPerAlloc, "1.5x the fewest agents"
	}
	drawText(img, 40, 14, "spindle-agent as the cluster grows (bench_scale)", scale, black)
	rss.draw(img, 70, 90)
	cpu.draw(img, 70+panelW+110, 90)

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("failed to write the plot %q: %w", path, err)
	}
	return f.Close()
}

func pick(v float64, ok bool) float64 {
	if !ok {
		return math.NaN()
	}
	return v
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 || math.IsNaN(v) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func (p *panel) draw(img *image.RGBA, x0, y0 int) {
	drawText(img, x0, y0-40, p.title, scale, black)
	top := p.target
	for _, s := range p.series {
		for _, v := range s.values {
			if !math.IsNaN(v) {
				top = max(top, v)
			}
		}
	}
	top = niceMax(top * 1.1)
	yOf := func(v float64) int { return y0 + panelH - int(v/top*panelH) }
	xOf := func(i int) int {
		if len(p.x) == 1 {
			return x0 + panelW/2
		}
		return x0 + 50 + i*(panelW-130)/(len(p.x)-1)
	}
	// Grid and y axis labels.
	for i := 0; i <= 5; i++ {
		v := top * float64(i) / 5
		y := yOf(v)
		line(img, x0, y, x0+panelW, y, light, false)
		label := fmt.Sprintf("%g", math.Round(v*100)/100)
		drawText(img, x0-textWidth(label, 1)-6, y-3, label, 1, black)
	}
	line(img, x0, y0, x0, y0+panelH, black, false)
	line(img, x0, y0+panelH, x0+panelW, y0+panelH, black, false)
	for i, l := range p.x {
		drawText(img, xOf(i)-textWidth(l, scale)/2, y0+panelH+8, l, scale, black)
	}
	drawText(img, x0+panelW/2-textWidth(p.xLabel, scale)/2, y0+panelH+34, p.xLabel, scale, black)
	if p.target > 0 {
		y := yOf(p.target)
		line(img, x0, y, x0+panelW, y, grey, true)
		drawText(img, x0+panelW-textWidth(p.targetLabel, 1)-4, y-10, p.targetLabel, 1, grey)
	}
	for si, s := range p.series {
		prev := -1
		for i, v := range s.values {
			if math.IsNaN(v) {
				continue
			}
			x, y := xOf(i), yOf(v)
			fill(img, x-3, y-3, x+3, y+3, s.c)
			if prev >= 0 {
				thick(img, xOf(prev), yOf(s.values[prev]), x, y, s.c, s.dashed)
			}
			label := fmt.Sprintf("%.1f", v)
			drawText(img, x+6, y-12, label, 1, s.c)
			prev = i
		}
		// Legend, top left inside the panel.
		ly := y0 + 8 + si*16
		thick(img, x0+10, ly+3, x0+40, ly+3, s.c, s.dashed)
		drawText(img, x0+48, ly-4, s.name, 1, s.c)
	}
}

func fill(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	draw.Draw(img, image.Rect(x0, y0, x1+1, y1+1), image.NewUniform(c), image.Point{}, draw.Src)
}

func thick(img *image.RGBA, x0, y0, x1, y1 int, c color.Color, dashed bool) {
	for d := -1; d <= 1; d++ {
		line(img, x0, y0+d, x1, y1+d, c, dashed)
	}
}

// line draws from (x0,y0) to (x1,y1) (Bresenham); dashed: 8 on, 6 off.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color, dashed bool) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for n := 0; ; n++ {
		if !dashed || n%14 < 8 {
			img.Set(x0, y0, c)
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}
