package meta

import (
	"testing"
	"time"

	"github.com/jacobsa/fuse/fuseops"
)

// TestNewShared: a shared-storage cache stores no fact (attributes,
// entries, negative entries, xattrs, xattr lists) and lets the kernel keep
// replies for SharedValidity in the kernel-cache tier and not at all in
// the off tier.
func TestNewShared(t *testing.T) {
	for _, tc := range []struct {
		tier Tier
		want time.Duration
	}{{KernelCache, SharedValidity}, {Off, 0}} {
		c := NewShared(tc.tier, nil)
		if !c.Shared() || New(tc.tier, nil, nil).Shared() {
			t.Errorf("%s: Shared() of NewShared %v, of New %v", tc.tier, c.Shared(), New(tc.tier, nil, nil).Shared())
		}
		for what, exp := range map[string]time.Time{"entry": c.EntryExpiration(), "negative": c.NegativeExpiration(), "attr": c.AttrExpiration()} {
			switch {
			case tc.want == 0 && !exp.IsZero():
				t.Errorf("%s: %s expiration %v, want none", tc.tier, what, exp)
			case tc.want > 0 && (exp.Before(time.Now().Add(tc.want-time.Second/2)) || exp.After(time.Now().Add(tc.want))):
				t.Errorf("%s: %s expiration %v from now, want %v", tc.tier, what, time.Until(exp), tc.want)
			}
		}
		var dir, n Node
		dir.ID, n.ID = 1, 2
		c.SetAttr(&n, fuseops.InodeAttributes{Size: 1})
		c.SetChild(&dir, "a", 2, 0)
		c.SetChild(&dir, "gone", 0, 0)
		c.SetXattr(&n, "user.x", []byte("v"), true)
		c.SetXattrList(&n, map[string][]byte{"user.y": []byte("w")})
		if _, ok := c.ServeAttr(&n); ok {
			t.Errorf("%s: attributes cached", tc.tier)
		}
		if _, ok := c.Child(&dir, "a"); ok {
			t.Errorf("%s: entry cached", tc.tier)
		}
		if _, ok := c.Child(&dir, "gone"); ok {
			t.Errorf("%s: negative entry cached", tc.tier)
		}
		if _, _, ok := c.Xattr(&n, "user.x"); ok {
			t.Errorf("%s: xattr cached", tc.tier)
		}
		if _, ok := c.XattrNames(&n); ok {
			t.Errorf("%s: xattr list cached", tc.tier)
		}
	}
}
