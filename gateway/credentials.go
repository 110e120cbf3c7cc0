package gateway

import (
	"crypto/sha256"
	"errors"
	"sync"
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
	token, password *SecretFile
	config          fileStamp
	fromConfig      [2]Secret
}

// Get returns the current token and password. A file that cannot be read
// (mid-rewrite, removed) keeps the last good value and reports the error.
func (c *Credentials) Get() (token, password Secret, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.TokenFile == "" && c.PasswordFile == "" {
		if st := stampFile(c.ConfigPath); !st.exists || !st.same(c.config) {
			cfg, err := LoadGatewayConfig(c.ConfigPath)
			if err != nil {
				c.config = fileStamp{}
				return c.fromConfig[0], c.fromConfig[1], err
			}
			c.fromConfig[0], c.fromConfig[1] = cfg.credentials()
			c.config = st
		}
		return c.fromConfig[0], c.fromConfig[1], nil
	}
	var errs []error
	get := func(f **SecretFile, path string) Secret {
		if path == "" {
			return ""
		}
		if *f == nil {
			*f = &SecretFile{path: path}
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

// credentials picks the secrets the gateway's auth mode uses.
func (cfg *GatewayConfig) credentials() (token, password Secret) {
	a := cfg.Gateway.Auth
	switch a.Mode {
	case "password":
		return "", a.Password
	case "token":
		return a.Token, ""
	}
	return a.Token, a.Password
}

// fingerprint identifies a pair of credentials without keeping them: the
// auth gate compares it to notice a rotation.
func fingerprint(token, password Secret) [32]byte {
	return sha256.Sum256([]byte(token.Reveal() + "\x00" + password.Reveal()))
}
