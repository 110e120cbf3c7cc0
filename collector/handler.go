package collector

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HandlerOpts configure the /metrics handler.
type HandlerOpts struct {
	// TimeoutOffset is subtracted from Prometheus' scrape timeout header so
	// the answer arrives before Prometheus gives up.
	TimeoutOffset time.Duration
	// MaxTimeout caps the deadline, and is the deadline when the scraper
	// sends no header.
	MaxTimeout time.Duration
	// MaxRequests in flight; 0 means no limit. Each scrape probes every
	// gateway, so this also bounds the load the exporter puts on them.
	MaxRequests int
	Logger      *slog.Logger
}

// ScrapeTimeout derives a scrape's deadline the way blackbox_exporter does.
func ScrapeTimeout(h http.Header, offset, maxTimeout time.Duration) time.Duration {
	v := h.Get("X-Prometheus-Scrape-Timeout-Seconds")
	if v == "" {
		return maxTimeout
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || secs <= 0 || secs > 1e6 {
		return maxTimeout
	}
	t := time.Duration(secs * float64(time.Second))
	if t-offset > 0 {
		t -= offset
	}
	return min(t, maxTimeout)
}

// NewHandler serves the exporter's own metrics (from static) together with
// one run of every collector, bounded by the scrape's deadline.
func NewHandler(e *Exporter, static *prometheus.Registry, opts HandlerOpts) http.Handler {
	var inFlight chan struct{}
	if opts.MaxRequests > 0 {
		inFlight = make(chan struct{}, opts.MaxRequests)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inFlight != nil {
			select {
			case inFlight <- struct{}{}:
				defer func() { <-inFlight }()
			default:
				http.Error(w, "too many concurrent scrapes", http.StatusServiceUnavailable)
				return
			}
		}
		timeout := ScrapeTimeout(r.Header, opts.TimeoutOffset, opts.MaxTimeout)
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		reg := prometheus.NewRegistry()
		reg.MustRegister(e.Scrape(ctx))
		compressLarge(promhttp.HandlerFor(prometheus.Gatherers{static, reg}, promhttp.HandlerOpts{
			ErrorLog:           slog.NewLogLogger(opts.Logger.Handler(), slog.LevelError),
			ErrorHandling:      promhttp.ContinueOnError,
			DisableCompression: true,
		})).ServeHTTP(w, r)
	})
	return promhttp.InstrumentMetricHandler(static, h)
}
