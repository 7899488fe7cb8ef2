package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cryptfs/cryptfs/internal/manpage"
)

// newGendoc is the hidden command `make install` runs: the manual pages
// of the command tree (section 1) and of the mount helper (section 8),
// and the shell completions, generated from the commands themselves so
// that they cannot fall behind.
func newGendoc(e env) *cobra.Command {
	var man, bash, zsh, fish, date string
	c := &cobra.Command{
		Use:    "gendoc [--man DIR] [--bash FILE] [--zsh FILE] [--fish FILE]",
		Short:  "Write the manual pages and shell completions (for make install)",
		Hidden: true,
		Args:   args(0),
		RunE: func(c *cobra.Command, _ []string) error {
			root := c.Root()
			if man == "" && bash == "" && zsh == "" && fish == "" {
				return withCode(exitUsage, "nothing to write: give --man, --bash, --zsh or --fish")
			}
			if man != "" {
				files, err := writeManPages(root, man, date)
				if err != nil {
					return err
				}
				for _, f := range files {
					fmt.Fprintln(e.stdout, f)
				}
			}
			for _, out := range []struct {
				file string
				gen  func(f *os.File) error
			}{
				{bash, func(f *os.File) error { return root.GenBashCompletionV2(f, true) }},
				{zsh, func(f *os.File) error { return root.GenZshCompletion(f) }},
				{fish, func(f *os.File) error { return root.GenFishCompletion(f, true) }},
			} {
				if out.file == "" {
					continue
				}
				if err := writeFile(out.file, out.gen); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, out.file)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&man, "man", "", "write the manual pages into `DIR`/man1 and DIR/man8")
	f.StringVar(&bash, "bash", "", "write the bash completion to `FILE`")
	f.StringVar(&zsh, "zsh", "", "write the zsh completion to `FILE`")
	f.StringVar(&fish, "fish", "", "write the fish completion to `FILE`")
	f.StringVar(&date, "date", "", "the date the pages show (default: $SOURCE_DATE_EPOCH's, else none)")
	return c
}

// writeManPages writes dir/man1/cryptfs*.1 and dir/man8/mount.fuse.cryptfs.8
// (with the symlink mount.cryptfs.8 to it, as Debian installs aliases) and
// returns the files.
func writeManPages(root *cobra.Command, dir, date string) ([]string, error) {
	if date == "" {
		date = sourceDate()
	}
	source := "cryptfs"
	if root.Version != "" {
		source += " " + root.Version
	}
	h := manpage.Header{Section: "1", Date: date, Source: source, Manual: "cryptfs manual"}
	man1, man8 := filepath.Join(dir, "man1"), filepath.Join(dir, "man8")
	for _, d := range []string{man1, man8} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	files, err := manpage.WriteTree(root, man1, h, func(c *cobra.Command) ([]manpage.Section, []string) {
		if c == root {
			return []manpage.Section{{Title: "Exit status", Text: strings.TrimPrefix(exitCodesHelp, "Exit codes:\n")}},
				[]string{"mount.fuse.cryptfs(8)"}
		}
		if c.Name() == "mount" && c.Parent() == root {
			return nil, []string{"mount.fuse.cryptfs(8)"}
		}
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	// The mount helper, in section 8 with mount(8)'s helpers.
	mountCmd, _, err := root.Find([]string{"mount"})
	if err != nil || mountCmd == root {
		return nil, errors.New("gendoc: no mount command")
	}
	h.Section = "8"
	helper := filepath.Join(man8, "mount.fuse.cryptfs.8")
	err = writeFile(helper, func(f *os.File) error {
		return manpage.Write(f, manpage.Page{Cmd: newMountHelperDoc(mountCmd), Header: h,
			SeeAlso: []string{"cryptfs(1)", "cryptfs-mount(1)", "mount(8)", "fstab(5)", "systemd.mount(5)"}})
	})
	if err != nil {
		return nil, err
	}
	alias := filepath.Join(man8, "mount.cryptfs.8")
	if err := os.Remove(alias); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.Symlink("mount.fuse.cryptfs.8", alias); err != nil {
		return nil, err
	}
	return append(files, helper, alias), nil
}

// sourceDate is the date of $SOURCE_DATE_EPOCH (reproducible builds), or
// "" without it.
func sourceDate() string {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return ""
	}
	var sec int64
	if _, err := fmt.Sscan(s, &sec); err != nil {
		return ""
	}
	return time.Unix(sec, 0).UTC().Format("2006-01-02")
}

// writeFile creates path (mode 0644) and fills it with gen.
func writeFile(path string, gen func(f *os.File) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if err := gen(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
