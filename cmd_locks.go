package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/prometheus/procfs"

	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/lockfile"
)

// locksTimeout bounds one run of the locks command: a lock directory
// flooded with files must not hang it.
const locksTimeout = 30 * time.Second

// lockJSON is one line of `locks --json`: a lock, a reclaim guard or a
// lifecycle coordinator.
type lockJSON struct {
	Path           string  `json:"path"`
	Kind           string  `json:"kind"` // config, state, reclaim_guard, coordinator
	Gateway        string  `json:"gateway,omitempty"`
	Product        string  `json:"product,omitempty"`
	Role           string  `json:"role,omitempty"`
	State          string  `json:"state"`
	Stale          bool    `json:"stale"`
	PID            int     `json:"pid,omitempty"`
	OwnerIDPresent bool    `json:"owner_id_present,omitempty"`
	Port           int     `json:"port,omitempty"`
	AgeSeconds     float64 `json:"age_seconds"`
	Filesystem     string  `json:"filesystem"`
	Volatile       bool    `json:"volatile"`
	Network        bool    `json:"network"`
	Why            string  `json:"why,omitempty"`
	// BlocksStart is why this blocks the gateway's next start (a
	// clawdbot_lock_blocking_start why), "" when it does not.
	BlocksStart string `json:"blocks_start,omitempty"`
	Action      string `json:"action,omitempty"`
	Error       string `json:"error,omitempty"`
	// StillBlocking, after --remove-stale, is why it still blocks the
	// next start; the command then exits 1.
	StillBlocking string `json:"still_blocking,omitempty"`
}

// listLocks prints every lock, reclaim guard and lifecycle coordinator it
// finds. With removeStale it clears what can go without harm (dead-owner
// locks, stuck reclaim guards; never what a live process holds), then
// scans again. It exits 1 when it met a lock it could not judge or remove,
// or when something that blocks a gateway's start remains (without
// removeStale: when anything blocks one).
func listLocks(targets []gateway.Target, procPath string, extraDirs []string, asJSON, removeStale bool, stdout, stderr io.Writer) int {
	fs, err := procfs.NewFS(procPath)
	if err != nil {
		fmt.Fprintf(stderr, "procfs at %s: %v\n", procPath, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), locksTimeout)
	defer cancel()
	dirs := lockfile.AllDirs(targets, extraDirs)
	opts := lockfile.Options{ProcRoot: procPath}
	res := lockfile.ScanContext(ctx, fs, dirs, targets, opts)
	now := time.Now()
	code := 0
	if res.Err != nil {
		fmt.Fprintf(stderr, "scan cut short: %v\n", res.Err)
		code = 1
	}
	for kind, n := range res.Dropped {
		if n > 0 {
			fmt.Fprintf(stderr, "%d %s not looked at (more than the per-directory limit)\n", n, kind)
		}
	}
	rows, index := lockRows(res, now)
	if !removeStale {
		// A listing is a check too: what blocks a start is a failure.
		for _, r := range rows {
			if r.BlocksStart != "" {
				code = 1
			}
		}
	}
	if removeStale {
		for _, a := range lockfile.Clear(ctx, fs, res, "", opts) {
			r := &rows[index[a.Path]]
			if a.Removed {
				r.Action = "removed"
			} else {
				r.Action, r.Error, code = "kept", a.Err.Error(), 1
			}
		}
		for i := range rows {
			r := &rows[i]
			if r.Action != "" {
				continue
			}
			r.Action = "kept"
			if r.State == string(lockfile.OwnerUnknown) && r.Kind != "reclaim_guard" && r.Kind != "coordinator" {
				r.Error, code = "cannot decide: "+r.Why, 1
			}
		}
		// What still blocks a start after the clean-up.
		after := lockfile.ScanContext(ctx, fs, dirs, targets, opts)
		for _, b := range after.Blocking() {
			i, ok := index[b.Path]
			if !ok {
				rows = append(rows, lockJSON{Path: b.Path, Kind: "unknown", Gateway: b.Gateway, State: "new", Why: b.Detail, BlocksStart: b.Why})
				i = len(rows) - 1
			}
			rows[i].StillBlocking = b.Why
			code = 1
		}
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
	header := "KIND\tSTATE\tPID\tAGE\tFILESYSTEM\tGATEWAY\tPATH\tBLOCKS START"
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
		blocks := r.BlocksStart
		if blocks == "" {
			blocks = "-"
		}
		kind := r.Kind
		if r.Role != "" && r.Role != "gateway" {
			kind += " (" + r.Role + ")"
		}
		line := fmt.Sprintf("%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s", kind, r.State, r.PID, time.Duration(r.AgeSeconds*float64(time.Second)).Round(time.Second), fsType, gw, r.Path, blocks)
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
		if r.StillBlocking != "" {
			fmt.Fprintf(stderr, "%s: still blocks the next start (%s): %s\n", r.Path, r.StillBlocking, r.Why)
		}
	}
	return code
}

// lockRows is one row per lock, guard and coordinator, and each path's row.
func lockRows(res lockfile.Result, now time.Time) ([]lockJSON, map[string]int) {
	blocks := map[string]string{}
	for _, b := range res.Blocking() {
		blocks[b.Path] = b.Why
	}
	var rows []lockJSON
	for _, l := range res.Locks {
		rows = append(rows, lockJSON{
			Path: l.Path, Kind: l.Kind, Gateway: l.Gateway, Product: l.Product, Role: l.Role,
			State: string(l.State), Stale: l.State.Stale(), PID: l.PID, OwnerIDPresent: l.HasOwnerID, Port: l.Port,
			AgeSeconds: l.Age(now).Seconds(), Filesystem: l.FS.Type, Volatile: l.FS.Volatile, Network: l.FS.Network, Why: l.Why,
			BlocksStart: blocks[l.Path],
		})
	}
	for _, g := range res.Guards {
		state := "idle"
		switch {
		case g.Stuck:
			state = "stuck"
		case g.Reclaiming:
			state = "reclaiming"
		}
		rows = append(rows, lockJSON{
			Path: g.Path, Kind: "reclaim_guard", Gateway: g.Gateway, Product: "openclaw", State: state, Stale: g.Stuck, PID: g.PID,
			AgeSeconds: g.Age(now).Seconds(), Filesystem: g.FS.Type, Volatile: g.FS.Volatile, Network: g.FS.Network, Why: g.Why,
			BlocksStart: blocks[g.Path],
		})
	}
	for _, c := range res.Coordinators {
		state := "free"
		if c.HolderPID > 0 {
			state = "held"
		}
		rows = append(rows, lockJSON{
			Path: c.Path, Kind: "coordinator", Gateway: c.Gateway, Product: "openclaw", State: state, PID: c.HolderPID,
			Filesystem: c.FS.Type, Volatile: c.FS.Volatile, Network: c.FS.Network, Why: c.Why, BlocksStart: blocks[c.Path],
		})
	}
	index := make(map[string]int, len(rows))
	for i, r := range rows {
		index[r.Path] = i
	}
	return rows, index
}
