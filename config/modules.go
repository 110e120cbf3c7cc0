package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/configfile"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
)

// ModuleSettings is one entry of modules: in the file: how the /probe
// endpoint authenticates to and connects with the targets Prometheus
// sends it. The credentials come from files named here, never from the
// request: a target label is no place for a secret.
type ModuleSettings struct {
	TokenFile      string `yaml:"token_file"`
	PasswordFile   string `yaml:"password_file"`
	TLSFingerprint string `yaml:"tls_fingerprint"`
	TLSCAFile      string `yaml:"tls_ca_file"`
	// Timeout caps the probe below the scrape deadline; 0 means the
	// scrape deadline (capped by --probe.timeout) alone.
	Timeout time.Duration `yaml:"timeout"`
	// AllowedTargets are CIDRs and host globs (Allowlist); empty means
	// loopback only.
	AllowedTargets []string `yaml:"allowed_targets"`
}

// Module is a validated module.
type Module struct {
	Name    string
	Timeout time.Duration
	// Target holds the credentials (re-read when their files change) and
	// TLS settings; the /probe endpoint fills in URL.
	Target  gateway.Target
	Allowed Allowlist
	// Settings as written, for ?debug=true (paths only, no secret).
	Settings ModuleSettings
}

// maxModules and maxAllowEntries bound what a config file may ask for.
const (
	maxModules      = 1000
	maxAllowEntries = 1000
)

var moduleName = lazyRegexp(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)

// resolveModules validates the modules: section. A token or password file
// that cannot be read fails the load, as for a gateway entry.
func resolveModules(in map[string]ModuleSettings, home string) (map[string]*Module, error) {
	if len(in) > maxModules {
		return nil, fmt.Errorf("modules: %d modules, at most %d", len(in), maxModules)
	}
	out := make(map[string]*Module, len(in))
	names := make([]string, 0, len(in))
	for n := range in {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		m, err := resolveModule(name, in[name], home)
		if err != nil {
			return nil, fmt.Errorf("modules: %q: %w", name, err)
		}
		out[name] = m
	}
	return out, nil
}

func resolveModule(name string, s ModuleSettings, home string) (*Module, error) {
	if !moduleName().MatchString(name) {
		return nil, errors.New("a module name is 1 to 64 letters, digits, '_', '.' or '-'")
	}
	if s.Timeout < 0 {
		return nil, fmt.Errorf("timeout %v: must not be negative", s.Timeout)
	}
	allowed, err := ParseAllowlist(s.AllowedTargets)
	if err != nil {
		return nil, err
	}
	t := gateway.Target{Source: "module " + name}
	if s.TLSFingerprint != "" {
		if _, err := gateway.ParseFingerprint(s.TLSFingerprint); err != nil {
			return nil, err
		}
	}
	t.TLSFingerprint, t.TLSCAFile = s.TLSFingerprint, configfile.ExpandHome(s.TLSCAFile, home)
	tokenFile, passwordFile := configfile.ExpandHome(s.TokenFile, home), configfile.ExpandHome(s.PasswordFile, home)
	if tokenFile != "" {
		if t.Token, err = secret.ReadFile(tokenFile); err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		t.Source += ", token file " + tokenFile
	}
	if passwordFile != "" {
		if t.Password, err = secret.ReadFile(passwordFile); err != nil {
			return nil, fmt.Errorf("password file: %w", err)
		}
		t.Source += ", password file " + passwordFile
	}
	if tokenFile != "" || passwordFile != "" {
		// Re-read when the files change: a rotated token works from the
		// next probe on.
		t.Creds = &gateway.Credentials{TokenFile: tokenFile, PasswordFile: passwordFile}
	} else {
		t.Source += ", no credentials"
	}
	return &Module{Name: name, Timeout: s.Timeout, Target: t, Allowed: allowed, Settings: s}, nil
}

// Allowlist is what a module may probe: the /probe endpoint answers
// whoever reaches it, and an exporter that connects wherever a query
// string says is a tool for reaching inside the network (SSRF). Entries
// are CIDRs ("10.42.0.0/16", a bare address is a /32 or /128) and host
// globs ("*.gateways.svc.cluster.local", "gw-?.example.com"; a * matches
// within one DNS label, case-insensitive). The rule, for a target host and
// every address it resolves to (resolved once; the probe connects to those
// addresses only):
//
//   - no entries: every address must be loopback;
//   - CIDRs only: every address must lie in one of them, whatever the
//     host is called;
//   - globs only: the host must be a name matching one; its addresses
//     must not be link-local (cloud metadata), unspecified or multicast;
//   - both: a name must match a glob (an address literal needs none), and
//     every address must lie in one of the CIDRs.
type Allowlist struct {
	Prefixes []netip.Prefix
	Globs    []string
}

// loopbackOnly is the rule of an empty allowed_targets.
var loopbackOnly = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// ParseAllowlist reads allowed_targets.
func ParseAllowlist(entries []string) (Allowlist, error) {
	var a Allowlist
	if len(entries) > maxAllowEntries {
		return a, fmt.Errorf("allowed_targets: %d entries, at most %d", len(entries), maxAllowEntries)
	}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			return a, errors.New("allowed_targets: empty entry")
		}
		if p, err := netip.ParsePrefix(e); err == nil {
			a.Prefixes = append(a.Prefixes, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(e); err == nil {
			a.Prefixes = append(a.Prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		if strings.Contains(e, "/") {
			return a, fmt.Errorf("allowed_targets: %q is not a CIDR", e)
		}
		g := normalizeHost(e)
		if g == "*" || strings.Trim(g, "*.") == "" {
			return a, fmt.Errorf("allowed_targets: %q allows every host; list the networks (CIDRs) instead", e)
		}
		for _, label := range strings.Split(g, ".") {
			if _, err := path.Match(label, ""); err != nil || label == "" || strings.ContainsAny(label, ":@ ") {
				return a, fmt.Errorf("allowed_targets: %q is neither a CIDR nor a host glob", e)
			}
		}
		a.Globs = append(a.Globs, g)
	}
	return a, nil
}

// Empty says the list allows loopback only.
func (a Allowlist) Empty() bool { return len(a.Prefixes) == 0 && len(a.Globs) == 0 }

// CheckHost is the part of the rule that needs no DNS: a name no glob
// matches, or an address literal the CIDRs refuse, is refused before
// anything is resolved or connected to.
func (a Allowlist) CheckHost(host string) error {
	h := normalizeHost(host)
	if ip, err := netip.ParseAddr(h); err == nil {
		if len(a.Prefixes) == 0 && len(a.Globs) > 0 {
			return fmt.Errorf("address %s: the module allows host names by glob only; list a CIDR to allow addresses", ip)
		}
		return a.checkAddr(ip.Unmap())
	}
	if len(a.Globs) == 0 {
		return nil // the addresses decide
	}
	for _, g := range a.Globs {
		if matchHost(g, h) {
			return nil
		}
	}
	return fmt.Errorf("host %q matches none of the module's allowed_targets globs", host)
}

// Check is the whole rule: the host and every address it resolved to.
func (a Allowlist) Check(host string, addrs []netip.Addr) error {
	if err := a.CheckHost(host); err != nil {
		return err
	}
	if len(addrs) == 0 {
		return fmt.Errorf("host %q has no address", host)
	}
	for _, ip := range addrs {
		if err := a.checkAddr(ip.Unmap()); err != nil {
			return fmt.Errorf("host %q: %w", host, err)
		}
	}
	return nil
}

func (a Allowlist) checkAddr(ip netip.Addr) error {
	prefixes := a.Prefixes
	if a.Empty() {
		prefixes = loopbackOnly
	}
	if len(prefixes) == 0 { // globs only
		if ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
			return fmt.Errorf("address %s is link-local, unspecified or multicast: list it as a CIDR to allow it", ip)
		}
		return nil
	}
	for _, p := range prefixes {
		if p.Contains(ip) {
			return nil
		}
	}
	if a.Empty() {
		return fmt.Errorf("address %s is not loopback, and the module has no allowed_targets", ip)
	}
	return fmt.Errorf("address %s is in none of the module's allowed_targets CIDRs", ip)
}

// String lists the entries, for ?debug=true.
func (a Allowlist) String() string {
	if a.Empty() {
		return "loopback only"
	}
	parts := make([]string, 0, len(a.Prefixes)+len(a.Globs))
	for _, p := range a.Prefixes {
		parts = append(parts, p.String())
	}
	return strings.Join(append(parts, a.Globs...), ", ")
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}

// matchHost matches label by label: a * never spans a dot.
func matchHost(glob, host string) bool {
	gl, hl := strings.Split(glob, "."), strings.Split(host, ".")
	if len(gl) != len(hl) {
		return false
	}
	for i := range gl {
		if ok, _ := path.Match(gl[i], hl[i]); !ok {
			return false
		}
	}
	return true
}
