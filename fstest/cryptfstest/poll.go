package cryptfstest

import (
	"os"
	"strings"
)

// PollEnv is the environment variable that forces a --poll choice on
// every mount the harness makes (`CRYPTFS_POLL=adaptive make test`):
// "adaptive", "off" or "auto". Unset, mounts use cryptfs's default.
const PollEnv = "CRYPTFS_POLL"

// poll returns the --poll a mount with o gets from the harness: o.Poll,
// else $CRYPTFS_POLL ("" for cryptfs's default). A --poll in o.Args wins
// over both.
func (o MountOptions) poll() string {
	for _, a := range o.Args {
		if a == "--poll" || strings.HasPrefix(a, "--poll=") {
			return ""
		}
	}
	if o.Poll != "" {
		return o.Poll
	}
	return os.Getenv(PollEnv)
}
