package cryptfstest

import (
	"os"
	"strings"
)

// TransportEnv is the environment variable that forces a transport on
// every mount the harness makes (`CRYPTFS_TRANSPORT=uring make test`):
// "uring", "dev" or "auto". Unset, mounts use cryptfs's default (auto).
const TransportEnv = "CRYPTFS_TRANSPORT"

// URingParam is the fuse module parameter that makes the kernel offer FUSE
// over io_uring to new mounts (Linux 6.14+ with CONFIG_FUSE_IO_URING).
const URingParam = "/sys/module/fuse/parameters/enable_uring"

// Transport returns the transport a mount with o gets from the harness:
// o.Transport, else $CRYPTFS_TRANSPORT ("" for cryptfs's default). A
// --transport in o.Args wins over both.
func (o MountOptions) transport() string {
	return o.forced("--transport", o.Transport, TransportEnv)
}

// URingOffered reports whether the kernel offers FUSE over io_uring to a
// new mount now, and if not why.
func URingOffered() (bool, string) {
	b, err := os.ReadFile(URingParam)
	if err != nil {
		return false, "this kernel has no FUSE over io_uring (Linux 6.14+ with CONFIG_FUSE_IO_URING; " + URingParam + " is missing)"
	}
	if v := strings.TrimSpace(string(b)); v != "Y" {
		return false, "the kernel does not offer FUSE over io_uring (" + URingParam + " is " + v + ")"
	}
	return true, ""
}
