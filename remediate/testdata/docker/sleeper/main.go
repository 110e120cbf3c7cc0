// Command sleeper is the stand-in gateway of the docker action's tests: a
// static binary run from a FROM-scratch image. It prints when it started,
// then, by its one argument:
//
//	serve    sleep until SIGTERM or SIGINT, then exit 0 (a well-behaved gateway)
//	stubborn ignore SIGTERM and SIGINT (a wedged one; only SIGKILL stops it)
//	crash    exit 1 at once (with restart policy "always", the container stays
//	         in Docker's "restarting" state for most of its back-off)
//	exit78   exit 78 at once (a gateway with a configuration or lock problem)
//	gateway ADDR  serve the gateway protocol (the fake gateway of the tests,
//	         no auth) on ADDR until SIGTERM, so a probe can tell it is up
//
// As PID 1 in a container it must handle SIGTERM itself: the kernel drops
// signals to PID 1 that it has no handler for.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/gatewaytest"
)

func main() {
	mode := "serve"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	// Handlers first: once "started" is out, a SIGTERM is handled (before,
	// Go's runtime would exit 2 on it).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("sleeper %s started at %s\n", mode, time.Now().UTC().Format(time.RFC3339Nano))
	switch mode {
	case "gateway":
		if len(os.Args) < 3 {
			fmt.Println("usage: sleeper gateway ADDR")
			os.Exit(2)
		}
		gw := gatewaytest.New(gatewaytest.Options{ListenAddr: os.Args[2], AuthMode: "none"})
		fmt.Printf("sleeper serves the gateway protocol at %s\n", gw.URL())
		s := <-sigs
		gw.Close()
		fmt.Printf("sleeper got %v, exiting\n", s)
	case "serve":
		s := <-sigs
		fmt.Printf("sleeper got %v, exiting\n", s)
	case "stubborn":
		for s := range sigs {
			fmt.Printf("sleeper ignores %v\n", s)
		}
	case "crash":
		os.Exit(1)
	case "exit78": // openclaw's "configuration or lock problem, do not restart"
		os.Exit(78)
	default:
		fmt.Fprintf(os.Stderr, "sleeper: unknown mode %q\n", mode)
		os.Exit(2)
	}
}
