package prober

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/fileio"
)

// maxCertFile bounds a certificate or CA file read for TLS.
const maxCertFile = 1 << 20

// pinError is a presented certificate that is not the pinned one.
type pinError struct{ msg string }

func (e *pinError) Error() string { return e.msg }

// tlsConfig is the TLS client configuration for a wss:// target, in order
// of precedence: a pinned SHA-256 fingerprint (as openclaw's own
// gateway.remote.tlsFingerprint), a CA file (ordinary verification,
// hostname included), the gateway's own certificate file from its state
// directory (pinned: openclaw's self-signed certificate has no IP SANs, so
// ordinary verification cannot pass), else the system roots.
func (p *Prober) tlsConfig(t gateway.Target) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if p.TLSConfig != nil {
		cfg = p.TLSConfig.Clone()
	}
	switch {
	case t.TLSFingerprint != "":
		want, err := gateway.ParseFingerprint(t.TLSFingerprint)
		if err != nil {
			return nil, err
		}
		pinLeaf(cfg, func(leaf *x509.Certificate) error {
			got := sha256.Sum256(leaf.Raw)
			if !bytes.Equal(got[:], want) {
				return &pinError{fmt.Sprintf("the gateway's certificate (SHA-256 %s) is not the pinned one (tls_fingerprint %s)",
					hex.EncodeToString(got[:]), hex.EncodeToString(want))}
			}
			return nil
		})
	case t.TLSCAFile != "":
		certs, err := readCerts(t.TLSCAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		for _, c := range certs {
			pool.AddCert(c)
		}
		cfg.RootCAs = pool
	case t.TLSCertFile != "":
		// Read at every probe: autoGenerate writes a new certificate when
		// the old one is gone or expired.
		// An unreadable file fails the handshake, not the probe: a
		// gateway that is not listening yet (autoGenerate writes the file
		// at start) is dial, not tls.
		certs, err := readCerts(t.TLSCertFile)
		pinLeaf(cfg, func(leaf *x509.Certificate) error {
			if err != nil {
				return &pinError{fmt.Sprintf("cannot read the gateway's own certificate (gateway.tls in its config) to pin it: %v", err)}
			}
			for _, c := range certs {
				if bytes.Equal(c.Raw, leaf.Raw) {
					return nil
				}
			}
			sum := sha256.Sum256(leaf.Raw)
			return &pinError{fmt.Sprintf("the gateway's certificate (SHA-256 %s, subject %q) is not the one in %s",
				hex.EncodeToString(sum[:]), leaf.Subject.CommonName, t.TLSCertFile)}
		})
	}
	return cfg, nil
}

// pinLeaf replaces chain and hostname verification by check of the leaf.
func pinLeaf(cfg *tls.Config, check func(*x509.Certificate) error) {
	cfg.InsecureSkipVerify = true // replaced by VerifyConnection, never off
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return &pinError{"the gateway presented no certificate"}
		}
		return check(cs.PeerCertificates[0])
	}
}

// readCerts reads the PEM certificates of a file, bounded.
func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := fileio.ReadFileBounded(path, maxCertFile)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for len(b) > 0 {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New(path + ": no PEM certificate")
	}
	return certs, nil
}
