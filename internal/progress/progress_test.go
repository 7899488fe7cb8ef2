package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestPlainLines(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	var out bytes.Buffer
	b := newBar(&out, false, "copy", 10, 100<<20, c.now)
	c.t = c.t.Add(5 * time.Second)
	b.Add(1, 10<<20) // within 10 s of the start: no line yet
	if out.Len() != 0 {
		t.Fatalf("printed before 10 s: %q", out.String())
	}
	c.t = c.t.Add(5 * time.Second)
	b.Add(1, 10<<20) // 20 MiB in 10 s: 2 MiB/s, 80 MiB left: 40 s
	want := "copy  20%  2/10 files  20.0 MiB/100.0 MiB  2.0 MiB/s  ETA 40s  (10s elapsed)\n"
	if out.String() != want {
		t.Errorf("got  %q\nwant %q", out.String(), want)
	}
	out.Reset()
	c.t = c.t.Add(time.Second)
	b.Done()
	if !strings.HasPrefix(out.String(), "copy  20%  2/10 files") || strings.Contains(out.String(), "\r") {
		t.Errorf("Done: %q", out.String())
	}
}

func TestTerminalRedraw(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	var out bytes.Buffer
	b := newBar(&out, true, "copy", 4, 4096, c.now)
	c.t = c.t.Add(time.Second)
	b.Add(2, 2048)
	got := out.String()
	want := "\rcopy [==========          ]  50%  2/4 files  2.0 KiB/4.0 KiB  2.0 KiB/s  ETA 1s\x1b[K"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	out.Reset()
	b.Clear()
	if out.String() != "\r\x1b[K" {
		t.Errorf("Clear: %q", out.String())
	}
	out.Reset()
	b.Done()
	if !strings.HasSuffix(out.String(), "\x1b[K\n") {
		t.Errorf("Done does not end the line: %q", out.String())
	}
}

// TestSkippedNotInRate: a resumed job's files found done count toward the
// total, not toward the rate (which would promise a far too early end).
func TestSkippedNotInRate(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	var out bytes.Buffer
	b := newBar(&out, false, "copy", 2, 200, c.now)
	b.Skip(1, 100)
	c.t = c.t.Add(10 * time.Second)
	b.Add(0, 10)
	if want := "  55%  1/2 files  110 B/200 B  1 B/s  ETA 1m30s"; !strings.Contains(out.String(), want) {
		t.Errorf("got %q, want it to contain %q", out.String(), want)
	}
}

func TestFormats(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {5 << 30, "5.0 GiB"}} {
		if got := Bytes(c.n); got != c.want {
			t.Errorf("Bytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	for _, c := range []struct {
		d    time.Duration
		want string
	}{{0, "0s"}, {1500 * time.Millisecond, "2s"}, {187 * time.Second, "3m07s"}, {2*time.Hour + 5*time.Minute, "2h05m"}} {
		if got := Duration(c.d); got != c.want {
			t.Errorf("Duration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}
