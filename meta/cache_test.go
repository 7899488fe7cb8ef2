package meta_test

import (
	"fmt"
	"testing"

	"github.com/cryptfs/cryptfs/meta"
)

// TestNegativeEntriesBoundedApartFromPositives: the bound on cached
// negative entries counts negatives only. A directory with more files than
// the bound still keeps recent negatives, never drops a positive, and
// forgets negatives only once they reach the bound.
func TestNegativeEntriesBoundedApartFromPositives(t *testing.T) {
	const files, bound = 5000, 4096
	c := meta.New(meta.KernelCache, nil, nil)
	dir := &meta.Node{ID: 1}
	for i := range files {
		c.SetChild(dir, fmt.Sprintf("f%d", i), uint64(i+2), 0)
	}
	absent := func(i int) string { return fmt.Sprintf("missing%d", i) }
	for i := range 10 {
		c.SetChild(dir, absent(i), 0, 0)
	}
	for i := range 10 {
		if id, ok := c.Child(dir, absent(i)); !ok || id != 0 {
			t.Errorf("negative %s after %d files: (%d, %v), want cached as absent", absent(i), files, id, ok)
		}
	}
	// Fill up to the bound: the next negative forgets the older ones.
	for i := 10; i < bound+1; i++ {
		c.SetChild(dir, absent(i), 0, 0)
	}
	if _, ok := c.Child(dir, absent(0)); ok {
		t.Errorf("negative %s still cached after %d more: the bound does not hold", absent(0), bound)
	}
	if id, ok := c.Child(dir, absent(bound)); !ok || id != 0 {
		t.Errorf("the newest negative is not cached: (%d, %v)", id, ok)
	}
	for i := range files {
		if id, ok := c.Child(dir, fmt.Sprintf("f%d", i)); !ok || id != uint64(i+2) {
			t.Fatalf("positive f%d lost: (%d, %v)", i, id, ok)
		}
	}
	// A negative that becomes positive no longer counts.
	c.SetChild(dir, absent(bound), 99, 0)
	if id, _ := c.Child(dir, absent(bound)); id != 99 {
		t.Errorf("positive after negative: %d, want 99", id)
	}
}

// BenchmarkNegativeInLargeDirectory: caching a negative entry in a
// directory of 20,000 files (the lookup before each create) costs the same
// as in an empty one.
func BenchmarkNegativeInLargeDirectory(b *testing.B) {
	for _, files := range []int{0, 20000} {
		b.Run(fmt.Sprintf("files=%d", files), func(b *testing.B) {
			c := meta.New(meta.KernelCache, nil, nil)
			dir := &meta.Node{ID: 1}
			for i := range files {
				c.SetChild(dir, fmt.Sprintf("f%d", i), uint64(i+2), 0)
			}
			names := make([]string, 8192)
			for i := range names {
				names[i] = fmt.Sprintf("n%d", i)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.SetChild(dir, names[i%len(names)], 0, 0)
			}
		})
	}
}
