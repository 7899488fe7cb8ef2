package fusefs

import (
	"bytes"
	"testing"

	"github.com/cryptfs/cryptfs/crypt"
)

func testSuite(t testing.TB) *crypt.Suite {
	t.Helper()
	key := bytes.Repeat([]byte{7}, crypt.KeyLen)
	s, err := crypt.New(key, crypt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Wipe)
	return s
}
