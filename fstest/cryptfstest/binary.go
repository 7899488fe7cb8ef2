package cryptfstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// SourceRoot returns the root of the cryptfs source tree this package was
// compiled from (where go.mod is), or "" when that tree is not there
// (a binary copied to another machine).
func SourceRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	root := filepath.Dir(filepath.Dir(filepath.Dir(file))) // fstest/cryptfstest/binary.go
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return ""
	}
	return root
}

// Build compiles the cryptfs command of the source tree at root (see
// SourceRoot) into the file out; env is added to go build's environment
// (e.g. CGO_ENABLED=0).
func Build(ctx context.Context, root, out string, env ...string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/cryptfs")
	cmd.Dir = root
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/cryptfs: %w\n%s", err, b)
	}
	return nil
}
