// Command exitmem runs a command and reports its memory as it exits: peak
// RSS (VmHWM) and, at exit, how much of the resident set is pages of files
// (the binary's own code and read-only data: clean, shared with every
// other process running it, dropped first under pressure) and how much is
// private (anonymous: heap, stacks, written data). GNU time gives only the
// first figure; scripts/bench-compare.sh prints all three for the probe
// subcommand.
//
// It stops the child at its exit with ptrace (PTRACE_O_TRACEEXIT), while
// the child's memory is still mapped, and reads /proc/<pid>/status.
//
// Usage: exitmem [-n RUNS] -- CMD [ARGS...]  (the run with the largest peak
// is printed; each run must exit 0).
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// Memory is what /proc/<pid>/status says at exit, in KiB.
type Memory struct {
	PeakKiB, AnonKiB, FileKiB, ShmemKiB int64
}

func main() {
	runs := flag.Int("n", 10, "runs; the one with the largest peak is printed")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: exitmem [-n RUNS] -- CMD [ARGS...]")
		os.Exit(2)
	}
	var worst Memory
	for range *runs {
		m, err := measure(flag.Args())
		if err != nil {
			fmt.Fprintln(os.Stderr, "exitmem:", err)
			os.Exit(1)
		}
		if m.PeakKiB > worst.PeakKiB {
			worst = m
		}
	}
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	fmt.Printf("peak RSS %.1f MiB; at exit %.1f MiB file-backed (the binary's pages, shared), %.1f MiB private\n",
		mib(worst.PeakKiB), mib(worst.FileKiB), mib(worst.AnonKiB+worst.ShmemKiB))
}

// measure runs argv once under ptrace and reads its memory at the exit stop.
func measure(argv []string) (Memory, error) {
	// Every ptrace request must come from the thread that attached.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = nil, nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
	if err := cmd.Start(); err != nil {
		return Memory{}, err
	}
	defer func() { _ = cmd.Process.Release() }()
	pid := cmd.Process.Pid
	var ws syscall.WaitStatus
	// The child stops with SIGTRAP once it has exec'd.
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		_ = cmd.Process.Kill()
		return Memory{}, err
	}
	if err := syscall.PtraceSetOptions(pid, syscall.PTRACE_O_TRACEEXIT); err != nil {
		_ = cmd.Process.Kill()
		return Memory{}, fmt.Errorf("ptrace: %w", err)
	}
	var m Memory
	var merr error
	signal := 0
	for {
		if err := syscall.PtraceCont(pid, signal); err != nil {
			_ = cmd.Process.Kill()
			return Memory{}, fmt.Errorf("ptrace: %w", err)
		}
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			_ = cmd.Process.Kill()
			return Memory{}, err
		}
		if ws.Exited() || ws.Signaled() {
			break
		}
		signal = 0
		if ws.TrapCause() == syscall.PTRACE_EVENT_EXIT {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err == nil {
				m, err = parseStatus(b)
			}
			merr = err
		} else if s := ws.StopSignal(); s != syscall.SIGTRAP {
			signal = int(s) // the Go runtime's SIGURG and the like go on to the child
		}
	}
	if merr != nil {
		return Memory{}, merr
	}
	if ws.Signaled() {
		return Memory{}, fmt.Errorf("%s: killed by %v", strings.Join(argv, " "), ws.Signal())
	}
	if ws.ExitStatus() != 0 {
		return Memory{}, fmt.Errorf("%s: exit status %d", strings.Join(argv, " "), ws.ExitStatus())
	}
	if m.PeakKiB == 0 {
		return Memory{}, errors.New("the child exited without an exit stop")
	}
	return m, nil
}

func parseStatus(b []byte) (Memory, error) {
	var m Memory
	fields := map[string]*int64{"VmHWM": &m.PeakKiB, "RssAnon": &m.AnonKiB, "RssFile": &m.FileKiB, "RssShmem": &m.ShmemKiB}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		p := fields[k]
		if !ok || p == nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc status %s: %q", k, v)
		}
		*p = n
		delete(fields, k)
	}
	if len(fields) > 0 {
		return m, fmt.Errorf("/proc status lacks %d of its memory fields", len(fields))
	}
	return m, nil
}
