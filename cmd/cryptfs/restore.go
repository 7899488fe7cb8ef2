package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cryptfs/cryptfs/internal/restore"
)

func newRestore(e env) *cobra.Command {
	var (
		u         unlockFlags
		force     bool
		keepGoing bool
		progress  bool
	)
	c := &cobra.Command{
		Use:   "restore [flags] CIPHERDIR PLAINPATH DEST",
		Short: "Restore a file or a directory of an encrypted directory (or a backup of one), offline",
		Long: `restore decrypts PLAINPATH (a file, a symlink or a directory with
everything under it; / for the whole tree) from the cipher directory
without mounting it, and writes it as DEST: run it on a copy of the tree
(a backup restored by restic, an rsync mirror) or on an unmounted
directory. Modes, times, user extended attributes, hard links and sparse
files are restored, and owners when run as root. Every block is
authenticated as the mount authenticates it.

Nothing partial is left under DEST: it is built under a temporary name
next to it and renamed into place when complete. DEST must not exist;
--force replaces files there and merges into a directory there (each
file replaced whole). A block that fails authentication stops the restore
with exit code 20, naming the file and the block, and leaves DEST as it
was; --keep-going restores everything that authenticates and lists the
rest (exit code 20). Progress is shown on a terminal.`,
		Args: args(3),
		RunE: func(c *cobra.Command, a []string) error {
			t, closeTree, err := openTree(e, &u, a[0])
			if err != nil {
				return err
			}
			defer closeTree()
			o := restore.Options{
				Force:     force,
				KeepGoing: keepGoing,
				Owners:    os.Geteuid() == 0,
				Warn: func(path, why string) {
					fmt.Fprintf(e.stderr, "cryptfs: warning: %s: %s\n", path, why)
				},
			}
			if f, ok := e.stderr.(*os.File); progress || ok && term.IsTerminal(int(f.Fd())) {
				total, err := restore.Totals(t, a[1])
				if err != nil {
					return treeError(err)
				}
				p := newProgressLine(e.stderr, total, time.Now())
				o.Progress = p.update
				defer p.done()
			}
			err = restore.Restore(t, a[1], a[2], o)
			if errors.Is(err, restore.ErrExists) {
				return err
			}
			var re *restore.Error
			if errors.As(err, &re) {
				return &codedError{code: exitDamaged, err: err}
			}
			return treeError(err)
		},
	}
	u.register(c)
	c.Flags().BoolVar(&force, "force", false, "restore over an existing DEST: replace its files, merge into its directories")
	c.Flags().BoolVar(&keepGoing, "keep-going", false, "restore every file that authenticates and list the others, instead of stopping at the first")
	c.Flags().BoolVar(&progress, "progress", false, "show progress even when standard error is not a terminal")
	return c
}

// progressLine shows a restore's progress on one line: entries and bytes
// done of the total, the rate and the time left. It redraws at most
// every 200 ms.
type progressLine struct {
	w     io.Writer
	total restore.Progress
	start time.Time

	mu   sync.Mutex
	last time.Time
	cur  restore.Progress
}

func newProgressLine(w io.Writer, total restore.Progress, start time.Time) *progressLine {
	return &progressLine{w: w, total: total, start: start}
}

func (p *progressLine) update(cur restore.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur = cur
	if now := time.Now(); now.Sub(p.last) >= 200*time.Millisecond {
		p.last = now
		fmt.Fprintf(p.w, "\r%s", formatProgress(cur, p.total, now.Sub(p.start)))
	}
}

// done draws the final figures and ends the line.
func (p *progressLine) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\r%s\n", formatProgress(p.cur, p.total, time.Since(p.start)))
}

// formatProgress is one progress line: "restored 120/16702 files, 12.0
// MiB/250.0 MiB, 80.0 MiB/s, ETA 0:03".
func formatProgress(cur, total restore.Progress, elapsed time.Duration) string {
	s := fmt.Sprintf("restored %d/%d files, %s/%s", cur.Files, total.Files, mib(cur.Bytes), mib(total.Bytes))
	if secs := elapsed.Seconds(); secs > 0 {
		rate := float64(cur.Bytes) / secs
		s += fmt.Sprintf(", %s/s", mib(int64(rate)))
		if rate > 0 && total.Bytes > cur.Bytes {
			left := time.Duration(float64(total.Bytes-cur.Bytes) / rate * float64(time.Second))
			s += ", ETA " + clock(left)
		}
	}
	return s + "   "
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// clock formats a duration as H:MM:SS or M:SS.
func clock(d time.Duration) string {
	s := int64(d.Round(time.Second).Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
