package daemon

import (
	"fmt"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// openPathTree opens the locked cipher directory (through its
// descriptor, not its path) as a ciphertree.Tree for the control
// socket's path requests; nil when it cannot (path requests then fail).
// The caller closes it after the control socket.
func openPathTree(o Options, suite *crypt.Suite) *ciphertree.Tree {
	t, err := ciphertree.Open(ciphertree.ProcFd(o.lowerFD), suite)
	if err != nil {
		o.Log.Warn().Err(err).Msg("cryptfs path will not map paths of this mount online")
		return nil
	}
	return t
}

// Paths maps paths for cryptfs path encrypt|decrypt of the mounted tree
// (control.PathHandler), as the offline command does with the password:
// the mount's keys never leave the daemon, only the names it maps.
func (h *controlHandler) Paths(decrypt bool, paths []string) ([]string, error) {
	if h.tree == nil {
		return nil, fmt.Errorf("the daemon could not open its cipher tree for path mapping")
	}
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		var r string
		var err error
		if decrypt {
			r, err = h.tree.PlainPath(p)
		} else {
			r, err = h.tree.LowerPath(p)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, r)
	}
	return out, nil
}
