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
func (o MountOptions) poll() string { return o.forced("--poll", o.Poll, PollEnv) }

// forced returns the value the harness adds as flag to a mount with o: the
// option's own value, else the environment variable's, and "" when
// o.Args already has the flag (the test's own choice wins).
func (o MountOptions) forced(flag, value, env string) string {
	for _, a := range o.Args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return ""
		}
	}
	if value != "" {
		return value
	}
	return os.Getenv(env)
}
