package prober

import (
	"crypto/sha256"
	"net/url"
	"sync"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/lru"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
)

// The auth gate: once a gateway has refused the credentials, the prober logs
// in at most once per backoff period. openclaw delays every failed login
// from one address by 250 ms·2^(n-1), n counting the failures of the last
// minute, up to 5 s (docs/protocol.md#auth-throttling); a probe that logs in
// with a wrong token on every scrape keeps it in that penalty box, and its
// answers then come after the deadline. Between logins a probe proves only
// that the gateway is alive (the unprompted challenge) and repeats the
// refusal.
const (
	// MaxAuthBackoff caps the backoff.
	MaxAuthBackoff = 5 * time.Minute
	// minAuthBackoff is the first backoff when the scrape interval is not
	// known yet (one probe so far) or implausibly short.
	minAuthBackoff = 10 * time.Second
)

type gateState struct {
	// reason is the refusal that started the backoff (auth or
	// hello_timeout); "" when there is none.
	reason   Reason
	backoff  time.Duration
	nextFull time.Time
	// creds identifies the refused credentials: others clear the backoff.
	creds [32]byte
	// accepted identifies the credentials the gateway last accepted: the
	// gateway throttles only refused logins, so a slow login with these
	// is a slow gateway (booting, loaded), not a throttled one.
	accepted [32]byte
	// lastProbe, to learn the scrape interval the backoff starts from.
	lastProbe time.Time
	interval  time.Duration
	bootID    string
	start     uint64
}

// gate keeps each target's state in a bounded LRU (lru.go): a forgotten
// target starts without backoff, so a refused one is logged in to once more.
type gate struct {
	mu    sync.Mutex
	state lru.Map[*gateState]
}

func (g *gate) get(key string) *gateState {
	return g.state.GetOrPut(key, func() *gateState { return &gateState{} })
}

// admit says whether this probe may log in (full) or must only check
// liveness, and with which remembered reason.
func (g *gate) admit(key string, creds [32]byte, now time.Time) (full bool, reason Reason, retryIn time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.get(key)
	if !st.lastProbe.IsZero() {
		st.interval = now.Sub(st.lastProbe)
	}
	st.lastProbe = now
	if st.reason != "" && st.creds != creds {
		st.clear() // rotated credentials deserve a login at once
	}
	if st.reason == "" || !now.Before(st.nextFull) {
		return true, "", 0
	}
	return false, st.reason, st.nextFull.Sub(now)
}

// done records the outcome of a full probe.
func (g *gate) done(key string, creds [32]byte, reason Reason, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.get(key)
	if reason == ReasonHelloTimeout && st.reason == "" && st.accepted == creds {
		return
	}
	switch reason {
	case ReasonAuth, ReasonHelloTimeout:
		if st.reason == "" || st.creds != creds {
			st.backoff = min(max(st.interval, minAuthBackoff), MaxAuthBackoff)
		} else {
			st.backoff = min(max(2*st.backoff, st.interval), MaxAuthBackoff)
		}
		// A login that times out after the same credentials were refused
		// is that refusal, held back by the gateway's throttling.
		if st.reason != ReasonAuth || st.creds != creds {
			st.reason = reason
		}
		st.creds, st.nextFull = creds, now.Add(st.backoff)
	case "":
		st.clear()
		st.accepted = creds
	case ReasonDial:
		// The port closed (the gateway restarted): its penalty is gone,
		// log in at the next probe.
		st.clear()
	}
}

// observe clears the backoff when the gateway restarted: a new bootId (an
// in-process restart) or process start time. The first value seen only
// sets the baseline.
func (g *gate) observe(key, bootID string, start uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.get(key)
	if bootID != "" {
		if st.bootID != "" && st.bootID != bootID {
			st.clear()
		}
		st.bootID = bootID
	}
	if start != 0 {
		if st.start != 0 && st.start != start {
			st.clear()
		}
		st.start = start
	}
}

func (g *gate) backoff(key string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if st, _ := g.state.Peek(key); st != nil && st.reason != "" {
		return st.backoff
	}
	return 0
}

func (st *gateState) clear() {
	st.reason, st.backoff, st.nextFull, st.creds = "", 0, time.Time{}, [32]byte{}
}

// fingerprint identifies a pair of credentials without keeping them: the
// auth gate compares it to notice a rotation.
func fingerprint(token, password secret.Secret) [32]byte {
	return sha256.Sum256([]byte(token.Reveal() + "\x00" + password.Reveal()))
}

// httpURL is the plain-HTTP address of path on the gateway's port.
func httpURL(ws *url.URL, path string) string {
	u := *ws
	u.Scheme = "http"
	if ws.Scheme == "wss" {
		u.Scheme = "https"
	}
	u.Path, u.RawQuery, u.Fragment = path, "", ""
	return u.String()
}
