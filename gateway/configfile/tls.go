package configfile

import "encoding/json"

// TLS is the gateway's gateway.tls block (the same schema in clawdbot
// 2026.1 and openclaw 2026.9: enabled, autoGenerate, certPath, keyPath,
// caPath). With TLS enabled the gateway serves wss:// and https:// only.
type TLS struct {
	Enabled      bool
	AutoGenerate bool
	CertPath     string
	KeyPath      string
	CAPath       string
}

// TLS reads gateway.tls. It is lenient: a block of the wrong shape reads as
// TLS off, field by field, and never fails the whole config (the gateway
// refuses to start with it anyway).
func (cfg *Config) TLS() TLS {
	var raw map[string]json.RawMessage
	if cfg == nil || len(cfg.Gateway.TLSRaw) == 0 || json.Unmarshal(cfg.Gateway.TLSRaw, &raw) != nil {
		return TLS{}
	}
	var t TLS
	_ = json.Unmarshal(raw["enabled"], &t.Enabled)
	_ = json.Unmarshal(raw["autoGenerate"], &t.AutoGenerate)
	_ = json.Unmarshal(raw["certPath"], &t.CertPath)
	_ = json.Unmarshal(raw["keyPath"], &t.KeyPath)
	_ = json.Unmarshal(raw["caPath"], &t.CAPath)
	return t
}
