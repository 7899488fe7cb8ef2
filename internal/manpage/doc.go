// Package manpage writes manual pages in roff (the man(7) macros) from a
// cobra command tree: one page per command, named as git and cobra name
// them (cryptfs-mount.1 for `cryptfs mount`), with NAME, SYNOPSIS,
// DESCRIPTION, OPTIONS, any extra sections the caller adds and SEE ALSO.
//
// It is a few hundred lines of our own rather than cobra/doc, which would
// bring a Markdown renderer (go-md2man, blackfriday) into the binary to
// turn help text that is not Markdown into roff.
//
// Promises: the output renders with groff's man macros without warnings
// (`groff -man -ww -z`); text is escaped so that nothing in a help string
// (a leading dot or quote, a backslash) is taken as a roff request; every
// '-' is a minus sign (\-), so options copied from the page work;
// indented lines of a help text are kept as they are (examples), and blank
// lines separate paragraphs.
package manpage
