package manpage

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Header is what every page's title line says.
type Header struct {
	Section string // "1", "8"
	Date    string // e.g. "2026-12-05"; may be empty
	Source  string // e.g. "cryptfs 1.2"
	Manual  string // e.g. "cryptfs manual"
}

// Section is an extra section of a page, after OPTIONS.
type Section struct {
	Title string // e.g. "EXIT STATUS"
	Text  string // help-text style: paragraphs, indented lines kept
}

// Page describes one page.
type Page struct {
	Cmd     *cobra.Command
	Header  Header
	Extra   []Section
	SeeAlso []string // more references, e.g. "mount(8)"
}

// Name returns the page name of a command: its path with dashes
// ("cryptfs-mount").
func Name(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "-")
}

// Documented reports whether c gets a page: available (not hidden, not
// deprecated) and not the help command.
func Documented(c *cobra.Command) bool {
	return c.IsAvailableCommand() && !c.IsAdditionalHelpTopicCommand() && c.Name() != "help"
}

// WriteTree writes a page for root and each documented command below it
// into dir as NAME.SECTION, with the header h and, for the page of a
// command, the extra sections and references extra returns for it (nil
// for none). It returns the files written.
func WriteTree(root *cobra.Command, dir string, h Header, extra func(*cobra.Command) ([]Section, []string)) ([]string, error) {
	var files []string
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		if c != root && !Documented(c) {
			return nil
		}
		p := Page{Cmd: c, Header: h}
		if extra != nil {
			p.Extra, p.SeeAlso = extra(c)
		}
		var buf bytes.Buffer
		if err := Write(&buf, p); err != nil {
			return err
		}
		path := filepath.Join(dir, Name(c)+"."+h.Section)
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			return err
		}
		files = append(files, path)
		for _, sub := range c.Commands() {
			if err := walk(sub); err != nil {
				return err
			}
		}
		return nil
	}
	return files, walk(root)
}

// Write writes the page of p.Cmd.
func Write(w io.Writer, p Page) error {
	c := p.Cmd
	var b strings.Builder
	name := Name(c)
	fmt.Fprintf(&b, ".TH %s %s %s %s %s\n", quote(strings.ToUpper(name)), quote(p.Header.Section),
		quote(p.Header.Date), quote(p.Header.Source), quote(p.Header.Manual))
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", escape(name), escape(oneLine(c.Short)))

	b.WriteString(".SH SYNOPSIS\n")
	use := c.UseLine()
	path := c.CommandPath()
	if rest, ok := strings.CutPrefix(use, path); ok {
		fmt.Fprintf(&b, ".B %s\n", quote(path))
		if rest = strings.TrimSpace(rest); rest != "" {
			fmt.Fprintf(&b, "%s\n", escapeLine(rest))
		}
	} else {
		fmt.Fprintf(&b, "%s\n", escapeLine(use))
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(&b, ".br\n.B %s\n.I COMMAND\n[flags]\n", quote(path))
	}

	b.WriteString(".SH DESCRIPTION\n")
	desc := c.Long
	if desc == "" {
		desc = c.Short
	}
	b.WriteString(text(desc))

	if subs := documentedSubs(c); len(subs) > 0 {
		b.WriteString(".SH COMMANDS\n")
		for _, s := range subs {
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\nSee \\fB%s\\fR(%s).\n", quote(s.Name()), escapeLine(oneLine(s.Short)), escape(Name(s)), p.Header.Section)
		}
	}
	writeFlags(&b, "OPTIONS", c.NonInheritedFlags())
	writeFlags(&b, "OPTIONS INHERITED FROM PARENT COMMANDS", c.InheritedFlags())
	for _, s := range p.Extra {
		fmt.Fprintf(&b, ".SH %s\n", quote(strings.ToUpper(s.Title)))
		b.WriteString(text(s.Text))
	}

	var see []string
	if c.HasParent() {
		see = append(see, Name(c.Parent())+"("+p.Header.Section+")")
	}
	for _, s := range documentedSubs(c) {
		see = append(see, Name(s)+"("+p.Header.Section+")")
	}
	see = append(see, p.SeeAlso...)
	if len(see) > 0 {
		b.WriteString(".SH SEE ALSO\n")
		for i, s := range see {
			ref, sec, ok := strings.Cut(strings.TrimSuffix(s, ")"), "(")
			sep := ","
			if i == len(see)-1 {
				sep = ""
			}
			if ok {
				fmt.Fprintf(&b, ".BR %s (%s)%s\n", quote(ref), escape(sec), sep)
			} else {
				fmt.Fprintf(&b, "%s%s\n", escapeLine(s), sep)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func documentedSubs(c *cobra.Command) []*cobra.Command {
	var subs []*cobra.Command
	for _, s := range c.Commands() {
		if Documented(s) {
			subs = append(subs, s)
		}
	}
	sort.Slice(subs, func(i, j int) bool { return subs[i].Name() < subs[j].Name() })
	return subs
}

// writeFlags writes the visible flags of fs as a tagged list.
func writeFlags(b *strings.Builder, title string, fs *pflag.FlagSet) {
	var items []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		varname, usage := pflag.UnquoteUsage(f)
		if varname == strings.ToLower(varname) {
			varname = strings.ToUpper(varname) // a type name (string, duration), not a `NAME`
		}
		var tag strings.Builder
		if f.Shorthand != "" && f.ShorthandDeprecated == "" {
			fmt.Fprintf(&tag, "\\fB\\-%s\\fR, ", escape(f.Shorthand))
		}
		fmt.Fprintf(&tag, "\\fB\\-\\-%s\\fR", escape(f.Name))
		if varname != "" {
			if f.NoOptDefVal != "" {
				fmt.Fprintf(&tag, "[=\\fI%s\\fR]", escape(varname))
			} else {
				fmt.Fprintf(&tag, " \\fI%s\\fR", escape(varname))
			}
		}
		desc := usage
		if def := f.DefValue; def != "" && def != "false" && def != "0" && def != "[]" && def != "0s" {
			desc += fmt.Sprintf(" (default %q)", def)
		}
		if f.Deprecated != "" {
			desc += " (deprecated: " + f.Deprecated + ")"
		}
		items = append(items, ".TP\n"+tag.String()+"\n"+escapeLine(oneLine(desc))+"\n")
	})
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(b, ".SH %s\n", quote(title))
	for _, it := range items {
		b.WriteString(it)
	}
}

// text turns help text into roff: blank lines separate paragraphs (.PP);
// runs of indented lines are kept as they are (.nf, in an indented
// block); other lines are filled.
func text(s string) string {
	var b strings.Builder
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(s, "\t", "    "), "\n "), "\n")
	inPre := false
	para := false
	endPre := func() {
		if inPre {
			b.WriteString(".fi\n.RE\n")
			inPre = false
		}
	}
	for _, l := range lines {
		switch {
		case strings.TrimSpace(l) == "":
			endPre()
			para = false
		case strings.HasPrefix(l, " "):
			if !inPre {
				b.WriteString(".PP\n.RS 4\n.nf\n")
				inPre, para = true, true
			}
			b.WriteString(escapeLine(trimIndent(l)) + "\n")
		default:
			endPre()
			if !para {
				b.WriteString(".PP\n")
				para = true
			}
			b.WriteString(escapeLine(l) + "\n")
		}
	}
	endPre()
	return b.String()
}

// trimIndent removes up to two leading spaces: help texts indent examples
// by two, the page indents the block itself.
func trimIndent(l string) string {
	for i := 0; i < 2 && strings.HasPrefix(l, " "); i++ {
		l = l[1:]
	}
	return l
}

// oneLine joins a text's lines.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// escape escapes text for use inside a roff line: backslashes print as
// themselves, dashes are minus signs.
func escape(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}

// escapeLine escapes a whole input line: also a leading dot or quote,
// which roff would read as a request, and leading spaces, which it would
// read as a break (in filled text).
func escapeLine(s string) string {
	s = escape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") || strings.HasPrefix(s, " ") {
		s = `\&` + s
	}
	return s
}

// quote makes s one argument of a macro.
func quote(s string) string {
	return `"` + strings.ReplaceAll(escape(s), `"`, `\(dq`) + `"`
}
