package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newInfo(e env) *cobra.Command {
	var cfgPath string
	var insecure bool
	c := &cobra.Command{
		Use:   "info [flags] CIPHERDIR",
		Short: "Show the format and key-derivation settings of an encrypted directory",
		Args:  args(1),
		RunE: func(c *cobra.Command, a []string) error {
			path := configPath(a[0], cfgPath)
			cfg, err := loadConfig(path, insecure)
			if err != nil {
				return err
			}
			features := strings.Join(cfg.Features, ", ")
			if features == "" {
				features = "(none)"
			}
			fmt.Fprintf(e.stdout, "Config:        %s\nFormat:        version %d\nFeatures:      %s\nKDF:           %s, time=%d, memory=%d KiB, threads=%d\nContent:       XChaCha20-Poly1305, 4096-byte blocks\nNames:         SIV (BLAKE2b-128 tag, XChaCha20), base64url\n",
				path, cfg.Version, features, cfg.KDF.Algorithm, cfg.KDF.Time, cfg.KDF.MemoryKiB, cfg.KDF.Threads)
			return nil
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "use the config `FILE` instead of CIPHERDIR/cryptfs.conf")
	c.Flags().BoolVar(&insecure, "insecure-kdf", false, "accept KDF parameters below the safe minimum (tests only)")
	c.Flags().MarkHidden("insecure-kdf")
	return c
}
