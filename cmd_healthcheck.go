package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// healthcheck GETs /-/healthy from the exporter listening on addr (":9789"
// means this host) and exits 0 when it answers 200.
func healthcheck(addr string, out io.Writer) int {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(out, "unhealthy: listen address %q: %v\n", addr, err)
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/-/healthy")
	if err != nil {
		fmt.Fprintf(out, "unhealthy: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(out, "unhealthy: HTTP %s\n", resp.Status)
		return 1
	}
	fmt.Fprintln(out, "healthy")
	return 0
}
