// Package filemode converts the kernel's st_mode bits (file type,
// permissions, setuid, setgid, sticky) to os.FileMode, the form
// jacobsa/fuse wants in replies. The forward file system (fusefs) and the
// reverse view (reversefs) both answer with the lower file's mode, so
// both convert the same way.
package filemode
