package main

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// systemColors are the bar colours, by system.
var systemColors = map[string]color.Color{
	"gocryptfs":                  color.RGBA{0x99, 0x99, 0x99, 0xff},
	"cryptfs-off":                color.RGBA{0xe6, 0x9f, 0x00, 0xff},
	"cryptfs-kernel-cache":       color.RGBA{0x00, 0x72, 0xb2, 0xff},
	"cryptfs-ebpf":               color.RGBA{0x00, 0x9e, 0x73, 0xff},
	"cryptfs-kernel-cache-uring": color.RGBA{0x56, 0xb4, 0xe9, 0xff},
	"cryptfs-kernel-cache-poll":  color.RGBA{0xd5, 0x5e, 0x00, 0xff},
	"cryptfs-shared":             color.RGBA{0xcc, 0x79, 0xa7, 0xff},
}

// ratioTicks labels a log10 axis with ratios.
type ratioTicks struct{}

func (ratioTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(min) - 1; e <= math.Ceil(max)+1; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			lv := math.Log10(v)
			if lv < min-1e-9 || lv > max+1e-9 {
				continue
			}
			ticks = append(ticks, plot.Tick{Value: lv, Label: trimRatio(v)})
		}
	}
	return ticks
}

func trimRatio(v float64) string {
	if v >= 1 {
		return fmt.Sprintf("%gx", v)
	}
	return fmt.Sprintf("%.2gx", v)
}

// writeChart draws the ratio to native of every workload and non-native
// system as grouped bars on a log scale, into a PNG at path.
func (r *results) writeChart(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("cryptfs-bench (%s): time relative to native, log scale (lower is better)", r.Mode)
	p.Y.Label.Text = "time / native time"
	p.Y.Tick.Marker = ratioTicks{}
	p.Legend.Top = true
	p.Legend.Left = true

	var systems []string
	for _, s := range r.Systems {
		if s.ID != "native" && s.Available {
			systems = append(systems, s.ID)
		}
	}
	names := make([]string, len(r.Workloads))
	for i, w := range r.Workloads {
		names[i] = w.ID
	}
	// About 2 cm per workload, 80% of it bars.
	width := vg.Length(len(r.Workloads))*2.2*vg.Centimeter + 3*vg.Centimeter
	width = max(width, 16*vg.Centimeter)
	barWidth := vg.Length(1.6*vg.Centimeter) / vg.Length(max(len(systems), 1))
	lo, hi := 0.0, 0.0
	for si, id := range systems {
		vals := make(plotter.Values, len(r.Workloads))
		for wi, w := range r.Workloads {
			if c := w.Cells[id]; c != nil && c.Ratio > 0 {
				vals[wi] = logRatio(c.Ratio)
				lo, hi = math.Min(lo, vals[wi]), math.Max(hi, vals[wi])
			}
		}
		bars, err := plotter.NewBarChart(vals, barWidth)
		if err != nil {
			return err
		}
		bars.LineStyle.Width = 0
		bars.Color = systemColors[id]
		if bars.Color == nil {
			bars.Color = color.Black
		}
		bars.Offset = vg.Length(float64(si)-float64(len(systems)-1)/2) * barWidth
		p.Add(bars)
		p.Legend.Add(systemLabel(id), bars)
	}
	p.Add(plotter.NewGrid())
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(r.Workloads))-0.4
	p.Y.Min, p.Y.Max = math.Floor(lo*2)/2-0.1, math.Ceil(hi*2)/2+0.3
	return p.Save(width, 12*vg.Centimeter, path)
}
