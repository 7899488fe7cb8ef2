package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/fsck"
)

func newFsck(e env) *cobra.Command {
	var (
		u      unlockFlags
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "fsck [flags] CIPHERDIR",
		Short: "Verify every name, block, xattr and symlink of an encrypted directory offline",
		Long: `fsck reads the whole cipher tree and checks that everything authenticates
under the directory's key. It changes nothing. Exit code 0: clean; 20:
problems found (each listed with its cipher path and, where known, its
plaintext path). Run it on an unmounted directory, or expect blocks that
are being written to show up as torn.

Conflict copies that sync tools (Syncthing, Dropbox, Nextcloud/ownCloud,
OneDrive) made of files changed on two machines are listed as conflicts,
not problems, and do not change the exit code: the mount shows each as
the original's name plus the tool's marker; keep one version by removing
the copy or renaming it over the original.`,
		Args: args(1),
		RunE: func(c *cobra.Command, a []string) error {
			cfg, master, err := u.unlock(e, a[0], u.secrets(e))
			if err != nil {
				return err
			}
			suite, err := crypt.New(master, cfg.CryptOptions())
			wipe(master)
			if err != nil {
				return err
			}
			defer suite.Wipe()
			var progress func(fsck.Report)
			if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				progress = func(r fsck.Report) {
					fmt.Fprintf(e.stderr, "\rchecked %d directories, %d files, %d blocks; %d problems ", r.Dirs, r.Files, r.Blocks, len(r.Problems))
				}
			}
			rep, err := fsck.Check(a[0], suite, progress)
			if progress != nil {
				fmt.Fprintln(e.stderr)
			}
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(struct {
					Clean bool `json:"clean"`
					*fsck.Report
				}{rep.Clean(), rep}); err != nil {
					return err
				}
			} else {
				for _, c := range rep.Conflicts {
					where := c.Lower
					if c.Plain != "" {
						where += " (" + c.Plain + ")"
					}
					what := "a copy of " + c.Original
					if c.Original == "" {
						what = "a copy"
					}
					if !c.Shown {
						what += ", hidden: another entry has its name"
					}
					fmt.Fprintf(e.stdout, "conflict (%s): %s: %s\n", c.Tool, where, what)
				}
				for _, p := range rep.Problems {
					where := p.Lower
					if p.Plain != "" {
						where += " (" + p.Plain + ")"
					}
					fmt.Fprintf(e.stdout, "%s: %s: %s\n", p.Kind, where, p.Detail)
				}
				fmt.Fprintf(e.stdout, "checked %d directories, %d files, %d symlinks, %d blocks, %d xattrs: ",
					rep.Dirs, rep.Files, rep.Symlinks, rep.Blocks, rep.Xattrs)
				if rep.Clean() {
					fmt.Fprint(e.stdout, "clean")
				} else {
					fmt.Fprintf(e.stdout, "%d problems", len(rep.Problems))
				}
				switch n := len(rep.Conflicts); n {
				case 0:
				case 1:
					fmt.Fprint(e.stdout, "; 1 conflict copy (keep one version: remove the copy or rename it over the original)")
				default:
					fmt.Fprintf(e.stdout, "; %d conflict copies (keep one version of each: remove the copy or rename it over the original)", n)
				}
				fmt.Fprintln(e.stdout)
			}
			if !rep.Clean() {
				return &codedError{code: exitFsckProblems, err: fmt.Errorf("%d problems found in %s", len(rep.Problems), a[0])}
			}
			return nil
		},
	}
	u.register(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON report")
	return c
}
