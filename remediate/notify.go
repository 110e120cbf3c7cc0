package remediate

// Notifications for the host without Alertmanager: a target's notify
// section names a file holding a Slack or Discord incoming-webhook URL, and
// each action, outcome, hold and open breaker is posted there as one short
// line. The engine must never wait for a chat service, so Notify only
// queues; one sender per target posts in the background.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clawdbot-exporter/clawdbot_exporter/config"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/logrepeat"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/secret"
)

// Notification results, the metric's result label.
const (
	NotifySent    = "sent"
	NotifyFailed  = "failed"
	NotifyDropped = "dropped"
)

// Limits of the notifier.
const (
	// notifyQueue bounds the events waiting per target: a chat service
	// that hangs costs at most this much memory, the rest is dropped.
	notifyQueue = 64
	// notifyTimeout bounds one POST, connect to last byte.
	notifyTimeout = 10 * time.Second
	// notifyRetryWait is the pause before the one retry of a 429 or 5xx
	// that says no Retry-After.
	notifyRetryWait = 2 * time.Second
	// notifyMaxRetryAfter bounds the server's Retry-After: a sender waits
	// no longer (it holds up the events queued behind).
	notifyMaxRetryAfter = 30 * time.Second
	// notifyBodyMax bounds how much of a response is read.
	notifyBodyMax = 4 << 10
	// notifyLogWindow: repeated failures and drops of a target within it
	// are one log line.
	notifyLogWindow = time.Minute
	// Message caps, in characters: Discord refuses content above 2000;
	// Slack takes more, but a notification is one line.
	discordMaxRunes = 2000
	slackMaxRunes   = 3000
)

// Notifiers posts events of targets with a notify section to their
// webhook; it implements Notifier.
type Notifiers struct {
	logger  *slog.Logger
	repeat  *logrepeat.Logger
	counter *prometheus.CounterVec
	client  *http.Client
	owned   bool // the client is ours: close its idle connections
	host    string

	queueSize int
	retryWait time.Duration

	// ctx ends when Close gives up flushing: in-flight POSTs and retry
	// waits stop, what is still queued is dropped.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	stop   chan struct{} // closed by Close: senders drain, then return
	dests  map[string]*dest
	wg     sync.WaitGroup
	// running counts live sender goroutines (for tests of Close).
	running atomic.Int64
}

// dest is one target's queue and what its sender remembers.
type dest struct {
	target string
	q      chan queued
	file   *secret.File // the current url_file; only the sender touches it
}

type queued struct {
	notify config.Notify
	ev     Event
}

// NotifyOption tunes a Notifiers.
type NotifyOption func(*Notifiers)

// WithHTTPClient posts through c (tests; a proxy). Its redirect policy is
// the caller's.
func WithHTTPClient(c *http.Client) NotifyOption {
	return func(n *Notifiers) { n.client, n.owned = c, false }
}

// WithRetryWait sets the pause before a retry that has no Retry-After.
func WithRetryWait(d time.Duration) NotifyOption {
	return func(n *Notifiers) { n.retryWait = d }
}

// WithQueueSize sets how many events may wait per target.
func WithQueueSize(size int) NotifyOption {
	return func(n *Notifiers) {
		if size > 0 {
			n.queueSize = size
		}
	}
}

// WithHostname sets the host name the messages start with (default
// os.Hostname).
func WithHostname(h string) NotifyOption {
	return func(n *Notifiers) { n.host = h }
}

// NewNotifiers registers clawdbot_remediation_notifications_total with reg
// (when not nil) and returns notifiers ready for Notify; Close stops them.
func NewNotifiers(reg prometheus.Registerer, logger *slog.Logger, opts ...NotifyOption) *Notifiers {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = notifyTimeout
	n := &Notifiers{
		logger: logger,
		repeat: logrepeat.New(logger, notifyLogWindow),
		counter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clawdbot_remediation_notifications_total",
			Help: "Notifications of remediation events (actions, outcomes, holds, open breakers), by result: sent, failed (unreadable URL file, HTTP error, no answer), dropped (queue full, or shutting down).",
		}, []string{"target", "result"}),
		client: &http.Client{
			Transport: tr,
			// A webhook does not redirect; following one would post the
			// message (and leak the URL in errors) elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		owned:     true,
		queueSize: notifyQueue,
		retryWait: notifyRetryWait,
		stop:      make(chan struct{}),
		dests:     map[string]*dest{},
	}
	for _, o := range opts {
		o(n)
	}
	if n.host == "" {
		n.host, _ = os.Hostname()
		if n.host == "" {
			n.host = "unknown-host"
		}
	}
	n.host = strings.ToValidUTF8(n.host, "?")
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if reg != nil {
		reg.MustRegister(n.counter)
	}
	return n
}

// Notify queues ev for t's webhook and returns at once; a full queue drops
// ev (counted). It never blocks on the network, the file system or a lock
// held across either.
func (n *Notifiers) Notify(t Target, ev Event) {
	if t.Notify == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.dests[t.Name]
	if d == nil {
		for _, r := range []string{NotifySent, NotifyFailed, NotifyDropped} {
			n.counter.WithLabelValues(t.Name, r)
		}
	}
	if n.closed {
		n.drop(t.Name, ev, "shutting down")
		return
	}
	if d == nil {
		d = &dest{target: t.Name, q: make(chan queued, n.queueSize)}
		n.dests[t.Name] = d
		n.wg.Add(1)
		n.running.Add(1)
		go n.sender(d)
	}
	select {
	case d.q <- queued{notify: *t.Notify, ev: ev}:
	default:
		n.drop(t.Name, ev, "queue full")
	}
}

func (n *Notifiers) drop(target string, ev Event, why string) {
	n.counter.WithLabelValues(target, NotifyDropped).Inc()
	n.repeat.Warn("notify-drop\x00"+target, "remediation notification dropped", "target", target, "kind", ev.Kind, "why", why)
}

// Close stops taking events and lets the senders post what is queued
// until ctx ends; then it stops them (in-flight POSTs are cancelled, the
// rest counted dropped) and returns once they have returned: ctx's error
// when it cut the flush short.
func (n *Notifiers) Close(ctx context.Context) error {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.stop)
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		n.cancel()
		<-done
	}
	n.cancel()
	if n.owned {
		n.client.CloseIdleConnections()
	}
	n.repeat.Flush()
	return err
}

// sender posts one target's events in order until Close.
func (n *Notifiers) sender(d *dest) {
	defer n.wg.Done()
	defer n.running.Add(-1)
	defer func() {
		if p := recover(); p != nil { // not expected: sendOne recovers its own
			n.logger.Error("remediation notifier panicked", "target", d.target, "panic", p)
		}
	}()
	for {
		select {
		case it := <-d.q:
			n.sendOne(d, it)
		case <-n.stop:
			for {
				select {
				case it := <-d.q:
					n.sendOne(d, it)
				default:
					return // closed: nothing more is queued
				}
			}
		}
	}
}

// sendOne posts one event and counts it exactly once.
func (n *Notifiers) sendOne(d *dest, it queued) {
	if n.ctx.Err() != nil {
		n.drop(d.target, it.ev, "shutting down")
		return
	}
	result := NotifyFailed
	defer func() {
		if p := recover(); p != nil {
			n.logger.Error("remediation notifier panicked", "target", d.target, "panic", p)
			result = NotifyFailed
		}
		n.counter.WithLabelValues(d.target, result).Inc()
	}()
	if err := n.post(d, it); err != nil {
		n.repeat.Warn("notify-fail\x00"+d.target, "remediation notification failed",
			"target", d.target, "kind", it.ev.Kind, "url_file", it.notify.URLFile, "err", err.Error())
		return
	}
	result = NotifySent
}

// notifyError is a failure in words that never hold the URL.
type notifyError string

func (e notifyError) Error() string { return string(e) }

// post sends it to the URL its file holds now, retrying once on 429/5xx.
// Every error it returns is free of the URL.
func (n *Notifiers) post(d *dest, it queued) error {
	if d.file == nil || d.file.Path() != it.notify.URLFile {
		d.file = secret.NewFileUnread(it.notify.URLFile)
	}
	s, err := d.file.Get()
	if s == "" {
		return notifyError("url_file unreadable: " + errText(err))
	}
	// A file being rewritten keeps its last URL (secret.File): go on.
	u, secrets, err := webhookURL(s)
	if err != nil {
		return err
	}
	body, err := messageBody(it.notify.Format, n.host, it.ev.Text)
	if err != nil {
		return notifyError("encoding the message: " + err.Error())
	}
	wait, err := n.postOnce(u, body, secrets)
	if err == nil || wait < 0 {
		return err
	}
	t := time.NewTimer(wait)
	select {
	case <-t.C:
	case <-n.ctx.Done():
		t.Stop()
		return notifyError(fmt.Sprintf("%v; no retry: shutting down", err))
	}
	if _, err2 := n.postOnce(u, body, secrets); err2 != nil {
		return notifyError(fmt.Sprintf("%v; retried: %v", err, err2))
	}
	return nil
}

// webhookURL checks the file's URL and returns it with the strings that
// must never be printed: the URL, its path, query and long path segments
// (the token), its password.
func webhookURL(s secret.Secret) (string, []secret.Secret, error) {
	raw := s.Reveal()
	u, err := url.Parse(raw)
	if err != nil { // url's errors quote the URL
		return "", nil, notifyError("url_file does not hold a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", nil, notifyError("url_file: the URL must be http:// or https://")
	}
	if u.Host == "" {
		return "", nil, notifyError("url_file: the URL has no host")
	}
	secrets := []secret.Secret{s, secret.Secret(u.String()), secret.Secret(u.EscapedPath()), secret.Secret(u.Path), secret.Secret(u.RawQuery)}
	if p, ok := u.User.Password(); ok {
		secrets = append(secrets, secret.Secret(p))
	}
	if u.User != nil {
		secrets = append(secrets, secret.Secret(u.User.Username()))
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 8 {
			secrets = append(secrets, secret.Secret(seg))
		}
	}
	return u.String(), secrets, nil
}

// postOnce is one POST. wait is how long to pause before a retry, or -1
// for none.
func (n *Notifiers) postOnce(u string, body []byte, secrets []secret.Secret) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(n.ctx, notifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return -1, notifyError("building the request failed")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "clawdbot_exporter")
	resp, err := n.client.Do(req)
	if err != nil {
		return -1, notifyError(secret.Redact(transportError(err), secrets...))
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, notifyBodyMax))
	_ = resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, nil
	}
	msg := fmt.Sprintf("HTTP %d", resp.StatusCode)
	// Redact before clipping: a cut through the URL would hide it from
	// Redact.
	if b := clip(strings.Join(strings.Fields(secret.Redact(strings.ToValidUTF8(string(head), "?"), secrets...)), " "), 200); b != "" {
		msg += ": " + b
	}
	wait := time.Duration(-1)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		wait = retryAfter(resp.Header.Get("Retry-After"), n.retryWait, time.Now())
	}
	return wait, notifyError(msg)
}

// transportError is err without the URL: net/http's *url.Error quotes it,
// so only its Op and the error beneath are kept.
func transportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return ue.Op + ": no answer within the deadline"
		}
		return ue.Op + ": " + errText(ue.Err)
	}
	return errText(err)
}

func errText(err error) string {
	if err == nil {
		return "no value"
	}
	return strings.ToValidUTF8(err.Error(), "?")
}

// retryAfter reads a Retry-After header (seconds or an HTTP date), bounded
// to notifyMaxRetryAfter; def when absent or unreadable.
func retryAfter(h string, def time.Duration, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return def
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs < 0 {
			return def
		}
		if secs > int64(notifyMaxRetryAfter/time.Second) {
			return notifyMaxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return def
	}
	return min(d, notifyMaxRetryAfter)
}

// messageBody is the JSON a Slack or Discord incoming webhook takes.
func messageBody(format, host, text string) ([]byte, error) {
	line := strings.ToValidUTF8("[clawdbot_exporter] "+host+": "+text, "?")
	switch format {
	case config.NotifyDiscord:
		return json.Marshal(struct {
			Content string `json:"content"`
			// No @everyone, @here, role or user pings from text that
			// may quote a gateway's output.
			AllowedMentions struct {
				Parse []string `json:"parse"`
			} `json:"allowed_mentions"`
		}{Content: truncateRunes(line, discordMaxRunes), AllowedMentions: struct {
			Parse []string `json:"parse"`
		}{Parse: []string{}}})
	case config.NotifySlack, "":
		// Slack reads <...> as links and mentions (<!channel>): escape
		// the three characters it asks to.
		esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
		return json.Marshal(struct {
			Text string `json:"text"`
		}{Text: esc.Replace(truncateRunes(line, slackMaxRunes))})
	default:
		return nil, fmt.Errorf("unknown format %q", format)
	}
}

// truncateRunes keeps at most n characters of s, the last one an ellipsis
// when it cut.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for j := range s {
		if count == n-1 {
			i = j
			break
		}
		count++
	}
	return s[:i] + "…"
}

// clip bounds s to n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
