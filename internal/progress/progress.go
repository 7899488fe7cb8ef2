package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Bar reports one job's progress. Its methods are safe for concurrent use.
type Bar struct {
	w     io.Writer
	tty   bool
	label string
	every time.Duration // between two redraws
	now   func() time.Time

	mu          sync.Mutex
	totalFiles  int64
	totalBytes  int64
	files       int64 // done
	bytes       int64 // done
	workedBytes int64 // done by work, not skipped: the rate's base
	start       time.Time
	last        time.Time // of the last output
	drawn       bool      // a terminal line is on screen
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// New returns a Bar for a job of totalFiles files and totalBytes bytes,
// writing to w: redrawn in place at most 5 times a second when w is a
// terminal, else a line every 10 seconds.
func New(w io.Writer, label string, totalFiles, totalBytes int64) *Bar {
	return newBar(w, IsTerminal(w), label, totalFiles, totalBytes, time.Now)
}

func newBar(w io.Writer, tty bool, label string, totalFiles, totalBytes int64, now func() time.Time) *Bar {
	b := &Bar{w: w, tty: tty, label: label, totalFiles: totalFiles, totalBytes: totalBytes, now: now, every: 10 * time.Second}
	if tty {
		b.every = 200 * time.Millisecond
	}
	b.start = now()
	b.last = b.start
	return b
}

// Add counts files and bytes done by work.
func (b *Bar) Add(files, bytes int64) { b.add(files, bytes, true) }

// Skip counts files and bytes found done already (a resumed job): they
// count toward the total but not toward the rate.
func (b *Bar) Skip(files, bytes int64) { b.add(files, bytes, false) }

func (b *Bar) add(files, bytes int64, worked bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.files += files
	b.bytes += bytes
	if worked {
		b.workedBytes += bytes
	}
	if now := b.now(); now.Sub(b.last) >= b.every {
		b.last = now
		b.draw(now)
	}
}

// Done prints the final state (on a terminal, ending the line).
func (b *Bar) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw(b.now())
	if b.tty {
		io.WriteString(b.w, "\n")
		b.drawn = false
	}
}

// Clear removes the terminal line (before other output); the next update
// draws it again.
func (b *Bar) Clear() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tty && b.drawn {
		io.WriteString(b.w, "\r\x1b[K")
		b.drawn = false
	}
}

func (b *Bar) draw(now time.Time) {
	line := b.line(now)
	if b.tty {
		fmt.Fprintf(b.w, "\r%s\x1b[K", line)
		b.drawn = true
	} else {
		fmt.Fprintln(b.w, line)
	}
}

// line renders the state: label, percentage (with a bar on a terminal),
// files, bytes, rate and time left.
func (b *Bar) line(now time.Time) string {
	frac := b.fraction()
	elapsed := now.Sub(b.start)
	var s strings.Builder
	s.WriteString(b.label)
	s.WriteString(" ")
	if b.tty {
		const width = 20
		n := int(frac * width)
		s.WriteString("[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "] ")
	}
	fmt.Fprintf(&s, "%3d%%  %d/%d files  %s/%s", int(frac*100), b.files, b.totalFiles, Bytes(b.bytes), Bytes(b.totalBytes))
	if elapsed > 0 && b.workedBytes > 0 {
		rate := float64(b.workedBytes) / elapsed.Seconds()
		fmt.Fprintf(&s, "  %s/s", Bytes(int64(rate)))
		if left := b.totalBytes - b.bytes; left > 0 && rate > 0 {
			fmt.Fprintf(&s, "  ETA %s", Duration(time.Duration(float64(left)/rate*float64(time.Second))))
		}
	}
	if !b.tty {
		fmt.Fprintf(&s, "  (%s elapsed)", Duration(elapsed))
	}
	return s.String()
}

// fraction is the part done, by bytes (files when there are no bytes).
func (b *Bar) fraction() float64 {
	var f float64
	switch {
	case b.totalBytes > 0:
		f = float64(b.bytes) / float64(b.totalBytes)
	case b.totalFiles > 0:
		f = float64(b.files) / float64(b.totalFiles)
	default:
		f = 1
	}
	return min(max(f, 0), 1)
}

// Bytes formats n bytes with a binary unit: "512 B", "1.5 KiB", "3.2 GiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Duration formats d to the second for humans: "45s", "3m07s", "2h05m".
func Duration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}
