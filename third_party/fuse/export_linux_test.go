package fuse

import "os"

// The serving processes of the tests (the test binary, re-executed) take
// these hooks from their environment.
func init() {
	testNoPin = os.Getenv("FUSETEST_NOPIN") != ""
	if os.Getenv("FUSETEST_SHORT_PAYLOAD") != "" {
		testPayloadLen = 4096
	}
}
