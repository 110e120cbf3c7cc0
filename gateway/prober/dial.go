package prober

import (
	"context"
	"net"
)

// DialFunc opens a probe's TCP connection to addr (host:port of the
// target URL). TLS and the WebSocket upgrade run on top of it, still
// addressed to the URL's host (SNI, Host header).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

type dialKey struct{}

// WithDial makes every connection of a probe run with the returned context
// (the WebSocket and the /readyz request) go through dial: the /probe
// endpoint's guard connects only to the addresses it vetted, so a DNS
// answer that changes between the check and the connection (rebinding)
// cannot redirect the probe.
func WithDial(ctx context.Context, dial DialFunc) context.Context {
	return context.WithValue(ctx, dialKey{}, dial)
}

// dialFor is the context's dial hook, else a plain dial.
func dialFor(ctx context.Context) DialFunc {
	if d, ok := ctx.Value(dialKey{}).(DialFunc); ok && d != nil {
		return d
	}
	return (&net.Dialer{}).DialContext
}
