package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
)

// lockJSON is one line of `locks --json`.
type lockJSON struct {
	Path       string  `json:"path"`
	Gateway    string  `json:"gateway,omitempty"`
	State      string  `json:"state"`
	Stale      bool    `json:"stale"`
	PID        int     `json:"pid,omitempty"`
	AgeSeconds float64 `json:"age_seconds"`
	Filesystem string  `json:"filesystem"`
	Volatile   bool    `json:"volatile"`
	Network    bool    `json:"network"`
	Why        string  `json:"why,omitempty"`
	Action     string  `json:"action,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// listLocks prints every lock it finds and, with removeStale, removes those
// whose owner is gone. It exits 1 when it met a lock it could not judge or
// could not remove.
func listLocks(targets []gateway.Target, procPath string, extraDirs []string, asJSON, removeStale bool, stdout, stderr io.Writer) int {
	fs, err := procfs.NewFS(procPath)
	if err != nil {
		fmt.Fprintf(stderr, "procfs at %s: %v\n", procPath, err)
		return 1
	}
	dirs := lockfile.AllDirs(targets, extraDirs)
	locks := lockfile.Scan(fs, dirs, targets)
	now := time.Now()
	code := 0
	rows := make([]lockJSON, 0, len(locks))
	for _, l := range locks {
		r := lockJSON{
			Path: l.Path, Gateway: l.Gateway, State: string(l.State), Stale: l.State.Stale(), PID: l.PID,
			AgeSeconds: l.Age(now).Seconds(), Filesystem: l.FS.Type, Volatile: l.FS.Volatile, Network: l.FS.Network, Why: l.Why,
		}
		if removeStale {
			switch {
			case l.State.Stale():
				if _, err := lockfile.RemoveStale(fs, l.Path); err != nil {
					r.Action, r.Error, code = "kept", err.Error(), 1
				} else {
					r.Action = "removed"
				}
			case l.State == lockfile.OwnerAlive:
				r.Action = "kept"
			default:
				r.Action, r.Error, code = "kept", "cannot decide: "+l.Why, 1
			}
		}
		rows = append(rows, r)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range rows {
			_ = enc.Encode(r)
		}
		return code
	}
	if len(rows) == 0 {
		fmt.Fprintf(stdout, "no gateway lock files in %v\n", dirs)
		return code
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	header := "STATE\tPID\tAGE\tFILESYSTEM\tGATEWAY\tPATH"
	if removeStale {
		header += "\tACTION"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fsType := r.Filesystem
		if r.Volatile {
			fsType += " (volatile)"
		}
		if r.Network {
			fsType += " (network!)"
		}
		gw := r.Gateway
		if gw == "" {
			gw = "-"
		}
		line := fmt.Sprintf("%s\t%d\t%s\t%s\t%s\t%s", r.State, r.PID, time.Duration(r.AgeSeconds*float64(time.Second)).Round(time.Second), fsType, gw, r.Path)
		if removeStale {
			line += "\t" + r.Action
		}
		fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
	for _, r := range rows {
		switch {
		case r.Error != "":
			fmt.Fprintf(stderr, "%s: %s\n", r.Path, r.Error)
		case r.State == string(lockfile.OwnerUnknown):
			fmt.Fprintf(stderr, "%s: state unknown: %s\n", r.Path, r.Why)
		}
	}
	return code
}
