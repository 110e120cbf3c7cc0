package config

import (
	"errors"
	"fmt"
	"net"

	"gopkg.in/yaml.v3"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
)

// checkExposure applies the gateway's own rule to the webhook: beyond
// loopback, remediation needs a bearer token, or a web config with basic
// auth or TLS client certificates.
func checkExposure(w Web, haveToken bool) error {
	if haveToken || !Exposed(w) {
		return nil
	}
	ok, err := webConfigAuthenticates(w.ConfigFile)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	return errors.New("refusing to serve remediation beyond loopback without authentication: set --remediation.token-file, " +
		"or basic_auth_users / TLS client certificates in --web.config.file, or listen on 127.0.0.1")
}

// Exposed says whether the exporter listens beyond loopback.
func Exposed(w Web) bool {
	if w.SystemdSocket {
		return true
	}
	for _, a := range w.ListenAddresses {
		if !loopback(a) {
			return true
		}
	}
	return false
}

// webConfigAuthenticates says whether the exporter-toolkit web config asks
// every client for basic auth or a verified client certificate.
func webConfigAuthenticates(path string) (bool, error) {
	if path == "" {
		return false, nil
	}
	b, err := fileio.ReadFileBounded(path, 1<<20)
	if err != nil {
		return false, fmt.Errorf("web config: %w", err)
	}
	var wc struct {
		TLS *struct {
			ClientAuth string `yaml:"client_auth_type"`
		} `yaml:"tls_server_config"`
		Users map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(b, &wc); err != nil {
		return false, fmt.Errorf("web config: %w", err)
	}
	return len(wc.Users) > 0 || (wc.TLS != nil && wc.TLS.ClientAuth == "RequireAndVerifyClientCert"), nil
}

// WebAuthenticates is webConfigAuthenticates for callers outside: the
// control endpoints accept any client the web config already checked.
func (s *Snapshot) WebAuthenticates() bool {
	ok, _ := webConfigAuthenticates(s.sources.Web.ConfigFile)
	return ok
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
