package gateway

import (
	"errors"
	"sync"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/configfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
)

// Credentials are a gateway's token and password as the files that hold
// them say now: a token rotated by rewriting its file (or the gateway's own
// config) works from the next probe on, without restarting the exporter.
// The files are stat'ed on every Get and read again only when their inode,
// size or mtime changed.
type Credentials struct {
	// TokenFile and PasswordFile are the exporter's own secret files.
	TokenFile, PasswordFile string
	// ConfigPath is the gateway's config, when the credentials come from
	// its gateway.auth block.
	ConfigPath string

	mu              sync.Mutex
	token, password *secret.File
	config          fileio.Stamp
	fromConfig      [2]secret.Secret
}

// Get returns the current token and password. A file that cannot be read
// (mid-rewrite, removed) keeps the last good value and reports the error.
func (c *Credentials) Get() (token, password secret.Secret, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.TokenFile == "" && c.PasswordFile == "" {
		if st := fileio.StampOf(c.ConfigPath); !st.Exists || !st.Same(c.config) {
			cfg, err := configfile.Load(c.ConfigPath)
			if err != nil {
				c.config = fileio.Stamp{}
				return c.fromConfig[0], c.fromConfig[1], err
			}
			c.fromConfig[0], c.fromConfig[1] = cfg.Credentials()
			c.config = st
		}
		return c.fromConfig[0], c.fromConfig[1], nil
	}
	var errs []error
	get := func(f **secret.File, path string) secret.Secret {
		if path == "" {
			return ""
		}
		if *f == nil {
			*f = secret.NewFileUnread(path)
		}
		v, err := (*f).Get()
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	token, password = get(&c.token, c.TokenFile), get(&c.password, c.PasswordFile)
	return token, password, errors.Join(errs...)
}
