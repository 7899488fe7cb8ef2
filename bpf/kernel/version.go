package kernel

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"sort"
)

// Sources holds the patch series and the out-of-tree module's build files
// (kmod/), so that an installed cryptfs binary can tell which module
// version it was built with and set up the module without a source
// checkout.
//
//go:embed *.patch kmod/build.sh kmod/dkms.sh kmod/dkms.conf kmod/fs-fuse.sha256 kmod/Makefile kmod/README.md
var Sources embed.FS

// ModuleVersion is the version string the out-of-tree fuse.ko built from
// this patch series carries (modinfo field "version", and
// /sys/module/fuse/version once loaded): "cryptfs-" and the first 12 hex
// digits of the sha256 of the series, concatenated in name order, exactly
// as kmod/build.sh --print-version computes it.
func ModuleVersion() string {
	names, err := fs.Glob(Sources, "*.patch")
	if err != nil || len(names) == 0 {
		panic("bpf/kernel: no embedded patch") // impossible: go:embed checks it
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := Sources.ReadFile(n)
		if err != nil {
			panic(err)
		}
		h.Write(b)
	}
	return ModuleVersionPrefix + hex.EncodeToString(h.Sum(nil))[:12]
}

// ModuleVersionPrefix starts the version of every cryptfs fuse.ko.
const ModuleVersionPrefix = "cryptfs-"
