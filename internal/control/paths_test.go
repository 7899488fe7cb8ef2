package control

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pathHandler maps "x" to "X" (encrypt) and back; any other path fails.
type pathHandler struct{ fakeHandler }

func (h *pathHandler) Paths(decrypt bool, paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		switch {
		case !decrypt && p == "a/x":
			out = append(out, "A/X")
		case decrypt && p == "A/X":
			out = append(out, "a/x")
		default:
			return nil, errors.New(p + ": no such path")
		}
	}
	return out, nil
}

// TestPathRequests: path-encrypt and path-decrypt reach a PathHandler
// with their paths, its errors come back as errors naming the path, and a
// Handler without path mapping says so.
func TestPathRequests(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       Handler
		req     request
		want    []string
		wantErr string
	}{
		{"encrypt", &pathHandler{}, request{Cmd: "path-encrypt", Paths: []string{"a/x", "a/x"}}, []string{"A/X", "A/X"}, ""},
		{"decrypt", &pathHandler{}, request{Cmd: "path-decrypt", Paths: []string{"A/X"}}, []string{"a/x"}, ""},
		{"unknown path", &pathHandler{}, request{Cmd: "path-encrypt", Paths: []string{"a/x", "b"}}, nil, "b: no such path"},
		{"no mapping", &fakeHandler{}, request{Cmd: "path-encrypt", Paths: []string{"a/x"}}, nil, "does not map paths"},
		{"too long", &pathHandler{}, request{Cmd: "path-encrypt", Paths: []string{strings.Repeat("a", maxRequest)}}, nil, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ListenAt(filepath.Join(t.TempDir(), "s.sock"), tc.h)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var r pathsReply
			_, err = callReq(s.Path(), os.Geteuid(), tc.req, &r)
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("%+v: %v, want an error with %q", tc.req, err, tc.wantErr)
			case tc.wantErr == "" && (err != nil || !slices.Equal(r.Paths, tc.want)):
				t.Errorf("%+v: %q, %v; want %q", tc.req, r.Paths, err, tc.want)
			}
		})
	}
}
