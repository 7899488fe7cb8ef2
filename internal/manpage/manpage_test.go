package manpage

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// tree is a command tree with every awkward thing a help text can hold.
func tree() *cobra.Command {
	root := &cobra.Command{
		Use:   "tool",
		Short: "A tool with-dashes",
		Long: `tool does things.
.start of a line that roff would take as a request
'and one with a quote; a backslash \n stays; "quotes" too.

An example, indented:

  tool sub --file=/etc/x -v
      deeper

Last paragraph.`,
		Version: "1.2",
	}
	var file string
	var verbose, hidden bool
	sub := &cobra.Command{Use: "sub [flags] DIR", Short: "Do the sub thing", Run: func(*cobra.Command, []string) {}}
	sub.Flags().StringVar(&file, "file", "", "read `FILE`")
	sub.Flags().BoolVarP(&verbose, "verbose", "v", false, "say more")
	sub.Flags().BoolVar(&hidden, "secret-flag", false, "not shown")
	sub.Flags().MarkHidden("secret-flag")
	sub.Flags().Duration("every", 0, "repeat")
	sub.Flags().Lookup("every").NoOptDefVal = "1s"
	sub.Flags().String("mode", "auto", "the mode")
	deep := &cobra.Command{Use: "deep", Short: "Deeper", Run: func(*cobra.Command, []string) {}}
	sub.AddCommand(deep)
	root.AddCommand(sub,
		&cobra.Command{Use: "hidden", Hidden: true, Run: func(*cobra.Command, []string) {}},
		&cobra.Command{Use: "old", Deprecated: "use sub", Run: func(*cobra.Command, []string) {}},
	)
	root.PersistentFlags().Bool("quiet", false, "say less")
	return root
}

func TestWriteTree(t *testing.T) {
	dir := t.TempDir()
	files, err := WriteTree(tree(), dir, Header{Section: "1", Date: "2026-12-05", Source: "tool 1.2", Manual: "tool manual"}, func(c *cobra.Command) ([]Section, []string) {
		if c.Name() == "tool" {
			return []Section{{Title: "Exit status", Text: "  0  success\n  1  failure"}}, []string{"mount(8)"}
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if want := []string{"tool.1", "tool-sub.1", "tool-sub-deep.1"}; !slices.Equal(names, want) {
		t.Fatalf("pages %v, want %v (no hidden, deprecated or help command)", names, want)
	}
	root := read(t, files[0])
	sub := read(t, files[1])
	for _, want := range []string{
		`.TH "TOOL" "1" "2026\-12\-05" "tool 1.2" "tool manual"`,
		"tool \\- A tool with\\-dashes\n",
		"\\&.start of a line",   // not a request
		"\\&'and one",           // not a request either
		`a backslash \en stays`, // printed, not an escape
		".nf\ntool sub \\-\\-file=/etc/x \\-v\n\\&    deeper\n.fi\n",
		".PP\nLast paragraph.\n",
		".SH COMMANDS\n.TP\n.B \"sub\"\nDo the sub thing\nSee \\fBtool\\-sub\\fR(1).\n",
		".SH \"EXIT STATUS\"\n",
		".BR \"tool\\-sub\" (1),\n.BR \"mount\" (8)\n",
	} {
		if !strings.Contains(root, want) {
			t.Errorf("tool.1 lacks %q:\n%s", want, root)
		}
	}
	for _, want := range []string{
		".B \"tool sub\"\n[flags] DIR\n",
		"\\fB\\-\\-file\\fR \\fIFILE\\fR\nread FILE\n",
		"\\fB\\-v\\fR, \\fB\\-\\-verbose\\fR\nsay more\n",
		"\\fB\\-\\-every\\fR[=\\fIDURATION\\fR]\n",
		"\\fB\\-\\-mode\\fR \\fISTRING\\fR\nthe mode (default \"auto\")\n",
		".SH \"OPTIONS INHERITED FROM PARENT COMMANDS\"\n.TP\n\\fB\\-\\-quiet\\fR\n",
		".BR \"tool\" (1),\n.BR \"tool\\-sub\\-deep\" (1)\n",
	} {
		if !strings.Contains(sub, want) {
			t.Errorf("tool-sub.1 lacks %q:\n%s", want, sub)
		}
	}
	if strings.Contains(sub, "secret") {
		t.Error("a hidden flag is documented")
	}
}

// TestRendersWithoutWarnings: groff's man macros render every page with
// all warnings on and say nothing.
func TestRendersWithoutWarnings(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("skipping: groff not found (apt-get install groff-base)")
	}
	files, err := WriteTree(tree(), t.TempDir(), Header{Section: "1", Source: "tool"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		var stderr bytes.Buffer
		cmd := exec.Command(groff, "-man", "-ww", "-z", f)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("groff %s: %v\n%s", filepath.Base(f), err, stderr.String())
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
