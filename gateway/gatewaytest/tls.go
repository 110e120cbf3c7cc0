package gatewaytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"time"
)

// serveTLS wraps the listener in TLS with a new self-signed certificate
// shaped like openclaw's autoGenerate one (CN openclaw-gateway, no IP SANs:
// only a client that pins it can connect).
func (s *Server) serveTLS(ln net.Listener) net.Listener {
	cert, certPEM := selfSigned("openclaw-gateway")
	s.certPEM = certPEM
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
}

// CertPEM is the certificate the server presents with Options.TLS, PEM
// encoded (what openclaw writes to <stateDir>/gateway/tls/gateway-cert.pem);
// nil without TLS.
func (s *Server) CertPEM() []byte { return append([]byte(nil), s.certPEM...) }

// SelfSigned makes a self-signed certificate for cn (no SANs), for tests
// that need a second, wrong certificate.
func SelfSigned(cn string) (tls.Certificate, []byte) { return selfSigned(cn) }

func selfSigned(cn string) (tls.Certificate, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("gatewaytest: key: %v", err))
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(fmt.Sprintf("gatewaytest: certificate: %v", err))
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// trickle hijacks the connection and sends an HTTP response one byte every
// 50 ms, never finishing it, until the peer or the server closes.
func (s *Server) trickle(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	resp := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Padding: ")
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-t.C:
		case <-s.quit:
			return
		}
		b := byte('a')
		if i < len(resp) {
			b = resp[i]
		}
		_ = conn.SetWriteDeadline(time.Now().Add(controlDeadline))
		if _, err := conn.Write([]byte{b}); err != nil {
			return
		}
	}
}
