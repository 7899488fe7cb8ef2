// Package progress reports the progress of a long job that processes a
// known number of files and bytes: on a terminal as one line redrawn in
// place (a bar, files, bytes, rate and the time left), elsewhere as a
// plain line every few seconds that a log or a pipe keeps readable. It
// knows nothing about what the job does, so the job stays quiet and
// testable.
package progress
