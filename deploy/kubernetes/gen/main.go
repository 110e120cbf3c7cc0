// Command gen renders deploy/kubernetes/prometheusrule.yaml, the mixin's
// rules (alerts/*.yaml) as a Prometheus Operator PrometheusRule.
//
//	go run ./deploy/kubernetes/gen          # write it
//	go run ./deploy/kubernetes/gen -check   # exit 1 when the checked-in file is stale
//
// Run it from anywhere inside the repository, after `make` re-renders alerts/.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/clawdbot-exporter/clawdbot_exporter/deploy/kubernetes/prometheusrule"
)

func main() {
	check := flag.Bool("check", false, "compare with the checked-in file instead of writing it")
	flag.Parse()
	if err := run(*check); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(check bool) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	out, err := prometheusrule.RenderFiles(root)
	if err != nil {
		return err
	}
	path := filepath.Join(root, prometheusrule.Output)
	if check {
		old, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(old, out) {
			return fmt.Errorf("%s is stale: run go run ./deploy/kubernetes/gen", prometheusrule.Output)
		}
		return nil
	}
	return os.WriteFile(path, out, 0o644)
}

// repoRoot is the nearest directory above the working directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
