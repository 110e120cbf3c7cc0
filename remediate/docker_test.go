package remediate

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/build"
	ctr "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/clawdbot-exporter/clawdbot_exporter/config"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway"
	"github.com/clawdbot-exporter/clawdbot_exporter/gateway/prober"
	itest "github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

func dockerTarget(name, host string, stop time.Duration) Target {
	return Target{Name: "t", Gateway: "g", Action: ActionSpec{Type: "docker",
		Docker: &DockerSpec{Container: name, Host: host, StopTimeout: Duration(stop)}}}
}

// newDocker builds the action through the registered factory.
func newDocker(t *testing.T, name, host string, stop time.Duration) Action {
	t.Helper()
	f, ok := actionFactories["docker"]
	if !ok {
		t.Fatal(`action "docker" is not registered`)
	}
	a, err := f(dockerTarget(name, host, stop), nil)
	if err != nil {
		t.Fatalf("docker action: %v", err)
	}
	return a
}

// clearDockerEnv keeps the developer's DOCKER_* settings out of the tests
// that talk to a fake daemon.
func clearDockerEnv(t *testing.T) {
	for _, k := range []string{"DOCKER_HOST", "DOCKER_API_VERSION", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"} {
		t.Setenv(k, "")
	}
}

func TestDockerStopSeconds(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {-time.Second, 0}, {time.Millisecond, 1}, {time.Second, 1},
		{1500 * time.Millisecond, 2}, {30 * time.Second, 30}, {2 * time.Minute, 120},
	} {
		if got := stopSeconds(c.d); got != c.want {
			t.Errorf("stopSeconds(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestDockerFactory(t *testing.T) {
	clearDockerEnv(t)
	if _, err := newDockerAction(Target{Name: "t", Action: ActionSpec{Type: "docker"}}, nil); err == nil {
		t.Error("no docker section: want an error")
	}
	if _, err := newDockerAction(dockerTarget("gw", "127.0.0.1:2375", time.Second), nil); err == nil || !strings.Contains(err.Error(), "127.0.0.1:2375") {
		t.Errorf("bad host: got %v, want an error naming it", err)
	}
	t.Setenv("DOCKER_API_VERSION", "not-a-version")
	if _, err := newDockerAction(dockerTarget("gw", "", time.Second), nil); err == nil {
		t.Error("bad DOCKER_API_VERSION: want an error at config load")
	}
}

// fakeDaemon serves the three endpoints the action uses, as a 1.41 daemon
// does, and records the calls.
type fakeDaemon struct {
	state map[string]ctr.State // by container name
	mu    sync.Mutex
	calls []string
}

func (f *fakeDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	f.mu.Unlock()
	w.Header().Set("Api-Version", "1.41")
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/_ping" {
		_, _ = io.WriteString(w, "OK")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1.41/containers/")
	if !ok {
		http.Error(w, `{"message":"unexpected path"}`, http.StatusBadRequest)
		return
	}
	name, op, _ := strings.Cut(rest, "/")
	st, ok := f.state[name]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		_, _ = fmt.Fprintf(w, `{"message":"No such container: %s"}`, name)
		return
	}
	switch {
	case op == "json" && r.Method == http.MethodGet:
		_ = json.NewEncoder(w).Encode(ctr.InspectResponse{ID: "abc123", Name: "/" + name, State: &st})
	case op == "restart" && r.Method == http.MethodPost:
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, `{"message":"unexpected call"}`, http.StatusBadRequest)
	}
}

func (f *fakeDaemon) restarts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if strings.Contains(c, "/restart") {
			out = append(out, c)
		}
	}
	return out
}

func TestDockerFakeDaemon(t *testing.T) {
	clearDockerEnv(t)
	f := &fakeDaemon{state: map[string]ctr.State{
		"gw":        {Status: ctr.StateRunning, Running: true},
		"looping":   {Status: ctr.StateRestarting, Restarting: true, Running: true},
		"stopped":   {Status: ctr.StateExited},
		"unrelated": {Status: ctr.StateRunning, Running: true},
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	host := "tcp://" + srv.Listener.Addr().String()
	ctx := t.Context()

	if err := newDocker(t, "gw", host, 1500*time.Millisecond).Run(ctx, Alert{}); err != nil {
		t.Fatalf("running container: %v", err)
	}
	// The version is negotiated down to the daemon's, and the stop
	// timeout is passed in whole seconds, rounded up.
	if got, want := f.restarts(), []string{"POST /v1.41/containers/gw/restart?t=2"}; !equalStrings(got, want) {
		t.Errorf("restart calls = %q, want %q", got, want)
	}

	if err := newDocker(t, "stopped", host, 30*time.Second).Run(ctx, Alert{}); err != nil {
		t.Fatalf("stopped container: %v", err)
	}
	if got := f.restarts(); len(got) != 2 || got[1] != "POST /v1.41/containers/stopped/restart?t=30" {
		t.Errorf("stopped container: restart calls = %q, want it restarted (started) with t=30", got)
	}

	if err := newDocker(t, "looping", host, time.Second).Run(ctx, Alert{}); err != nil {
		t.Fatalf("restarting container: %v, want nil (left to Docker)", err)
	}
	if got := f.restarts(); len(got) != 2 {
		t.Errorf("restarting container was restarted again: %q", got)
	}

	err := newDocker(t, "missing", host, time.Second).Run(ctx, Alert{})
	if err == nil || !strings.Contains(err.Error(), `container "missing" not found on the docker daemon at `+host) {
		t.Errorf("missing container: got %v, want a clear not-found error", err)
	}
	for _, c := range f.calls {
		if strings.Contains(c, "unrelated") {
			t.Errorf("touched another container: %s", c)
		}
	}
}

func TestDockerPreflightFakeDaemon(t *testing.T) {
	clearDockerEnv(t)
	f := &fakeDaemon{state: map[string]ctr.State{
		"running":   {Status: ctr.StateRunning, Running: true},
		"paused":    {Status: ctr.StatePaused, Running: true, Paused: true},
		"looping":   {Status: ctr.StateRestarting, Restarting: true, Running: true, ExitCode: 78},
		"exited78":  {Status: ctr.StateExited, ExitCode: 78},
		"exited1":   {Status: ctr.StateExited, ExitCode: 1},
		"exited143": {Status: ctr.StateExited, ExitCode: 143},
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	host := "tcp://" + srv.Listener.Addr().String()
	for _, c := range []struct{ name, hold, detail string }{
		{"running", "", ""},
		{"paused", "", ""}, // a frozen gateway: the case the restart is for
		{"looping", SkipSupervisor, "restarting container looping already"},
		{"exited78", SkipNeedsPerson, "exited with status 78"},
		{"exited1", "", ""},
		{"exited143", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantPreflight(t, newDocker(t, c.name, host, time.Second), c.hold, c.detail)
		})
	}
	if got := f.restarts(); len(got) != 0 {
		t.Errorf("Preflight restarted: %q", got)
	}
	if hold, _, err := preflight(t, newDocker(t, "missing", host, time.Second)); err == nil || hold != "" {
		t.Errorf("missing container: Preflight = %q, %v; want an error and no hold", hold, err)
	}
}

func TestDockerUnreachable(t *testing.T) {
	clearDockerEnv(t)
	host := "tcp://" + itest.RefusedAddr(t)
	sock := "unix://" + filepath.Join(t.TempDir(), "no-docker.sock")
	for _, h := range []string{host, sock} {
		err := newDocker(t, "gw", h, time.Second).Run(t.Context(), Alert{})
		if err == nil || !strings.Contains(err.Error(), "docker daemon unreachable at "+h) {
			t.Errorf("host %s: got %v, want \"docker daemon unreachable at %s\"", h, err, h)
		}
	}

	// A daemon that accepts but never answers: bounded by ctx.
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := newDocker(t, "gw", "tcp://"+hang.Listener.Addr().String(), time.Second).Run(ctx, Alert{})
	if err == nil || !strings.Contains(err.Error(), "did not answer in time") || time.Since(start) > 5*time.Second {
		t.Errorf("hung daemon: got %v after %v, want a timeout at 300ms", err, time.Since(start))
	}
	hang.CloseClientConnections()
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ---- against a real Docker daemon ----

// realDocker returns a client of the daemon the environment names (as the
// action's is), or skips the test when there is none; on CI (CI=true) a
// missing daemon fails instead: scripts/start-dockerd.sh starts one.
func realDocker(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ping, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		itest.Missing(t, "no docker daemon at %s (%v); start one with scripts/start-dockerd.sh (needs root and apt-get install -y docker.io)", c.DaemonHost(), err)
	}
	t.Logf("docker daemon at %s: API %s (client negotiated %s)", c.DaemonHost(), ping.APIVersion, c.ClientVersion())
	return c
}

func randomID(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(b))
}

// buildSleeperImage compiles testdata/docker/sleeper statically and builds
// a FROM-scratch image of it with the legacy builder (no registry here, and
// Engine 20.10 without buildx). The image is removed at cleanup.
func buildSleeperImage(t *testing.T, c *client.Client, tag string) {
	t.Helper()
	ctx := t.Context()
	bin := filepath.Join(t.TempDir(), "sleeper")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./testdata/docker/sleeper")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build sleeper: %v\n%s", err, out)
	}
	binData, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY sleeper /sleeper\nENTRYPOINT [\"/sleeper\"]\nCMD [\"serve\"]\n")},
		{"sleeper", 0o755, binData},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := c.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags: []string{tag}, Version: build.BuilderV1, Remove: true, ForceRemove: true,
		Labels: map[string]string{"clawdbot-exporter.test": "remediate"},
	})
	if err != nil {
		t.Fatalf("docker build: %v", err)
	}
	defer func() { _ = res.Body.Close() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := c.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Errorf("remove image %s: %v", tag, err)
		}
	})
	var log strings.Builder
	dec := json.NewDecoder(res.Body)
	for {
		var m struct {
			Stream, Error string
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("docker build output: %v\n%s", err, log.String())
		}
		log.WriteString(m.Stream)
		if m.Error != "" {
			t.Fatalf("docker build: %s\n%s", m.Error, log.String())
		}
	}
	if _, err := c.ImageInspect(ctx, tag); err != nil {
		t.Fatalf("built image %s is missing: %v\n%s", tag, err, log.String())
	}
}

// runSleeper starts a container of the sleeper image in mode, without a
// network, and removes it at cleanup.
func runSleeper(t *testing.T, c *client.Client, image, name, mode string, policy ctr.RestartPolicyMode) {
	t.Helper()
	runContainer(t, c, image, name, []string{mode}, "none", policy)
}

func runContainer(t *testing.T, c *client.Client, image, name string, cmd []string, network string, policy ctr.RestartPolicyMode) {
	t.Helper()
	ctx := t.Context()
	_, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   name,
		Config: &ctr.Config{Image: image, Cmd: cmd, Labels: map[string]string{"clawdbot-exporter.test": "remediate"}},
		HostConfig: &ctr.HostConfig{
			NetworkMode:   ctr.NetworkMode(network),
			RestartPolicy: ctr.RestartPolicy{Name: policy},
		},
	})
	if err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := c.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Errorf("remove container %s: %v", name, err)
		}
	})
	if _, err := c.ContainerStart(ctx, name, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start container %s: %v", name, err)
	}
}

func inspectState(t *testing.T, c *client.Client, name string) (*ctr.State, time.Time) {
	t.Helper()
	res, err := c.ContainerInspect(t.Context(), name, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
	st := res.Container.State
	started, err := time.Parse(time.RFC3339Nano, st.StartedAt)
	if err != nil {
		t.Fatalf("inspect %s: StartedAt %q: %v", name, st.StartedAt, err)
	}
	return st, started
}

// watchEvents records the daemon's events of container name from now on.
func watchEvents(t *testing.T, c *client.Client, name string) func() []string {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	now := time.Now()
	res := c.Events(ctx, client.EventsListOptions{
		Since:   strconv.FormatInt(now.Unix(), 10) + "." + fmt.Sprintf("%09d", now.Nanosecond()),
		Filters: make(client.Filters).Add("type", "container").Add("container", name),
	})
	var mu sync.Mutex
	var seen []string
	go func() {
		for m := range res.Messages {
			mu.Lock()
			seen = append(seen, string(m.Action))
			mu.Unlock()
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// containerLogs is the start of the container's stdout (the daemon's
// multiplexed stream, read as bytes: enough to find a line in).
func containerLogs(t *testing.T, c *client.Client, name string) string {
	t.Helper()
	rc, err := c.ContainerLogs(t.Context(), name, client.ContainerLogsOptions{ShowStdout: true})
	if err != nil {
		t.Fatalf("logs of %s: %v", name, err)
	}
	defer func() { _ = rc.Close() }()
	b, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
	return string(b)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

var waitFor = itest.WaitFor

func TestDockerRealDaemon(t *testing.T) {
	c := realDocker(t)
	id := randomID(t)
	image := "clawdbot-exporter-test-sleeper:" + id
	begin := time.Now()
	buildSleeperImage(t, c, image)
	t.Logf("built %s in %v", image, time.Since(begin).Round(time.Millisecond))

	// restart checks that the action restarted name: running again, a
	// later StartedAt, and the daemon's "restart" event.
	restart := func(t *testing.T, name string, stop time.Duration) time.Duration {
		t.Helper()
		_, before := inspectState(t, c, name)
		events := watchEvents(t, c, name)
		start := time.Now()
		if err := newDocker(t, name, "", stop).Run(t.Context(), Alert{}); err != nil {
			t.Fatalf("Run: %v", err)
		}
		took := time.Since(start)
		st, after := inspectState(t, c, name)
		if !st.Running || st.Restarting || st.Paused {
			t.Errorf("after Run: state %s (running %v), want running", st.Status, st.Running)
		}
		if !after.After(before) {
			t.Errorf("StartedAt %v did not move on from %v", after, before)
		}
		waitFor(t, `the daemon's "restart" event`, 5*time.Second, func() bool { return contains(events(), "restart") })
		t.Logf("restarted %s in %v; events %v", name, took.Round(time.Millisecond), events())
		return took
	}

	t.Run("Running", func(t *testing.T) {
		name := "clawdbot-exporter-test-running-" + id
		runSleeper(t, c, image, name, "serve", ctr.RestartPolicyDisabled)
		if took := restart(t, name, 10*time.Second); took > 5*time.Second {
			t.Errorf("a container that exits on SIGTERM took %v to restart", took)
		}
	})

	t.Run("StopTimeout", func(t *testing.T) {
		// Ignores SIGTERM: the restart waits the 1 s stop timeout (not
		// Docker's default 10 s), then SIGKILLs.
		name := "clawdbot-exporter-test-stubborn-" + id
		runSleeper(t, c, image, name, "stubborn", ctr.RestartPolicyDisabled)
		if took := restart(t, name, time.Second); took < time.Second || took > 6*time.Second {
			t.Errorf("restart of a SIGTERM-ignoring container took %v, want about the 1 s stop timeout", took)
		}
	})

	t.Run("OnceWhateverThePolicy", func(t *testing.T) {
		// The daemon's restart stops the container as by hand: its restart
		// policy must not start it a second time (docs/supervisors.md).
		for _, policy := range []ctr.RestartPolicyMode{ctr.RestartPolicyAlways, ctr.RestartPolicyUnlessStopped, ctr.RestartPolicyOnFailure} {
			t.Run(string(policy), func(t *testing.T) {
				name := "clawdbot-exporter-test-policy-" + string(policy) + "-" + id
				runSleeper(t, c, image, name, "stubborn", policy) // SIGKILLed at the stop timeout: exit 137, a failure
				restart(t, name, time.Second)
				_, after := inspectState(t, c, name)
				time.Sleep(2 * time.Second) // a second start by the policy would have come by now
				st, later := inspectState(t, c, name)
				res, err := c.ContainerInspect(t.Context(), name, client.ContainerInspectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if !later.Equal(after) || !st.Running || res.Container.RestartCount != 0 {
					t.Errorf("policy %s: started again at %v after the action's start at %v (running %v, RestartCount %d)",
						policy, later, after, st.Running, res.Container.RestartCount)
				}
			})
		}
	})

	t.Run("SignalUnderPolicy", func(t *testing.T) {
		// What the signal action leaves to the restart policy: a signal
		// from outside Docker (kill(2), as the action sends it from a
		// shared PID namespace), not "docker kill", which counts as a
		// stop by hand. "serve" exits 0 on SIGTERM, as the gateways do;
		// SIGKILL makes the exit code 137. docs/supervisors.md has the table.
		for _, c2 := range []struct {
			policy    ctr.RestartPolicyMode
			sig       syscall.Signal
			restarted bool
		}{
			{ctr.RestartPolicyAlways, syscall.SIGTERM, true},
			{ctr.RestartPolicyUnlessStopped, syscall.SIGTERM, true},
			{ctr.RestartPolicyOnFailure, syscall.SIGTERM, false},
			{ctr.RestartPolicyOnFailure, syscall.SIGKILL, true},
			{ctr.RestartPolicyDisabled, syscall.SIGKILL, false},
		} {
			t.Run(string(c2.policy)+"/"+unix.SignalName(c2.sig), func(t *testing.T) {
				name := fmt.Sprintf("clawdbot-exporter-test-sig-%s-%d-%s", c2.policy, c2.sig, id)
				runSleeper(t, c, image, name, "serve", c2.policy)
				waitFor(t, "the sleeper's handlers (its start line)", 20*time.Second, func() bool {
					return strings.Contains(containerLogs(t, c, name), "started at")
				})
				st, _ := inspectState(t, c, name)
				if st.Pid <= 0 {
					t.Fatalf("no pid: %+v", st)
				}
				// Held by a pidfd, and signalled until it exits: PID 1 of
				// a container drops a signal it has no handler for yet.
				fd, err := unix.PidfdOpen(st.Pid, 0)
				if err != nil {
					t.Fatalf("pidfd_open %d: %v", st.Pid, err)
				}
				defer func() { _ = unix.Close(fd) }()
				waitFor(t, "the gateway to die of the signal", 20*time.Second, func() bool {
					if err := unix.PidfdSendSignal(fd, c2.sig, nil, 0); err != nil {
						return errors.Is(err, syscall.ESRCH)
					}
					return exited(t.Context(), fd, 100*time.Millisecond)
				})
				var restarts int
				var status string
				waitFor(t, "the container to exit or come back", 20*time.Second, func() bool {
					res, err := c.ContainerInspect(t.Context(), name, client.ContainerInspectOptions{})
					if err != nil {
						t.Fatal(err)
					}
					restarts, status = res.Container.RestartCount, string(res.Container.State.Status)
					return restarts > 0 || status == "exited"
				})
				if c2.restarted != (restarts > 0) {
					t.Errorf("policy %s, %v: RestartCount %d, status %s; want restarted %v", c2.policy, c2.sig, restarts, status, c2.restarted)
				}
				if !c2.restarted {
					time.Sleep(time.Second) // and it stays down
					if res, err := c.ContainerInspect(t.Context(), name, client.ContainerInspectOptions{}); err != nil || res.Container.RestartCount != 0 {
						t.Errorf("policy %s, %v: restarted late (%v)", c2.policy, c2.sig, err)
					}
				}
			})
		}
	})

	t.Run("PreflightRunning", func(t *testing.T) {
		name := "clawdbot-exporter-test-pre-running-" + id
		runSleeper(t, c, image, name, "serve", ctr.RestartPolicyDisabled)
		if hold, detail, err := preflight(t, newDocker(t, name, "", time.Second)); hold != "" || err != nil {
			t.Errorf("running container: Preflight = %q, %q, %v; want to go on", hold, detail, err)
		}
	})

	t.Run("PreflightExited78", func(t *testing.T) {
		name := "clawdbot-exporter-test-exit78-" + id
		runSleeper(t, c, image, name, "exit78", ctr.RestartPolicyDisabled)
		waitFor(t, "the container to exit", 20*time.Second, func() bool {
			st, _ := inspectState(t, c, name)
			return st.Status == ctr.StateExited
		})
		hold, detail, err := preflight(t, newDocker(t, name, "", time.Second))
		if err != nil || hold != SkipNeedsPerson || !strings.Contains(detail, "status 78") {
			t.Errorf("exited 78: Preflight = %q, %q, %v; want %q", hold, detail, err, SkipNeedsPerson)
		}
		t.Logf("held: %s", detail)
	})

	t.Run("Stopped", func(t *testing.T) {
		name := "clawdbot-exporter-test-stopped-" + id
		runSleeper(t, c, image, name, "serve", ctr.RestartPolicyDisabled)
		zero := 0
		if _, err := c.ContainerStop(t.Context(), name, client.ContainerStopOptions{Timeout: &zero}); err != nil {
			t.Fatal(err)
		}
		restart(t, name, time.Second)
	})

	t.Run("Paused", func(t *testing.T) {
		name := "clawdbot-exporter-test-paused-" + id
		runSleeper(t, c, image, name, "serve", ctr.RestartPolicyDisabled)
		if _, err := c.ContainerPause(t.Context(), name, client.ContainerPauseOptions{}); err != nil {
			t.Fatal(err)
		}
		restart(t, name, time.Second)
	})

	t.Run("Restarting", func(t *testing.T) {
		// A container that exits at once under restart policy "always"
		// spends nearly all its time in Docker's back-off (100 ms, doubled
		// at each restart), State.Restarting. After 4 restarts the
		// back-off is 800 ms or more, so the action's inspect, right
		// after ours, sees it restarting too. The action must leave it alone: no
		// "restart" event from the daemon (its own restarts are
		// "die"/"start" events).
		name := "clawdbot-exporter-test-restarting-" + id
		runSleeper(t, c, image, name, "crash", ctr.RestartPolicyAlways)
		waitFor(t, "State.Restarting after 4 restarts", 20*time.Second, func() bool {
			res, err := c.ContainerInspect(t.Context(), name, client.ContainerInspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return res.Container.State.Restarting && res.Container.RestartCount >= 4
		})
		events := watchEvents(t, c, name)
		hold, detail, err := preflight(t, newDocker(t, name, "", time.Second))
		if err != nil || hold != SkipSupervisor || !strings.Contains(detail, "restart policy (always)") {
			t.Errorf("restarting container: Preflight = %q, %q, %v; want %q", hold, detail, err, SkipSupervisor)
		}
		if err := newDocker(t, name, "", time.Second).Run(t.Context(), Alert{}); err != nil {
			t.Fatalf("Run on a restarting container: %v, want nil", err)
		}
		time.Sleep(time.Second) // a restart's event would be out by now
		if ev := events(); contains(ev, "restart") {
			t.Errorf("the action restarted a container Docker was already restarting; events %v", ev)
		} else {
			t.Logf("left alone; events meanwhile %v", ev)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		name := "clawdbot-exporter-test-missing-" + id
		err := newDocker(t, name, "", time.Second).Run(t.Context(), Alert{})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("container %q not found on the docker daemon at ", name)) {
			t.Errorf("missing container: got %v, want a clear not-found error", err)
		}
	})
}

// TestDockerEngineRecovers runs the whole path against the real daemon: an
// alert reaches the engine, the docker action restarts a container that
// serves the gateway protocol (on the host network), and verification
// probes it until it is up again.
func TestDockerEngineRecovers(t *testing.T) {
	c := realDocker(t)
	id := randomID(t)
	image, name := "clawdbot-exporter-test-gateway:"+id, "clawdbot-exporter-test-gw-"+id
	buildSleeperImage(t, c, image)
	// A free port, for the container's gateway to listen on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	runContainer(t, c, image, name, []string{"gateway", addr}, "host", ctr.RestartPolicyDisabled)
	_, before := inspectState(t, c, name)

	fs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	world := &LocalWorld{Gateways: func() []gateway.Target { return []gateway.Target{{Name: "main", URL: "ws://" + addr}} }, FS: fs, ProcRoot: "/proc",
		Prober: &prober.Prober{}}
	waitFor(t, "the container's gateway to answer", 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return world.Probe(ctx, "main") == nil
	})
	zero := Duration(0)
	target := Target{Name: "restart-gw", Gateway: "main", Warmup: &zero,
		Action: ActionSpec{Type: "docker", Docker: &DockerSpec{Container: name, Host: os.Getenv("DOCKER_HOST")}}}
	cfg := config.Remediation{Targets: []Target{target}}
	if err := cfg.Validate([]string{"main"}); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	e, err := NewEngine(cfg.Targets, world, m, promslog.NewNopLogger(), Options{VerifyInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	e.Handle(&Message{Version: "4", Alerts: []Alert{{Status: "firing", Fingerprint: "d1", StartsAt: begin,
		Labels: map[string]string{"alertname": "ClawdbotGatewayDown", "gateway": "main", "remediation": "restart"}}}})
	e.Wait()
	if v := testutil.ToFloat64(m.actions.WithLabelValues("restart-gw", "docker", ResultRecovered)); v != 1 {
		t.Fatalf("recovered actions = %v", v)
	}
	_, after := inspectState(t, c, name)
	if !after.After(before) {
		t.Errorf("StartedAt %v -> %v: not restarted", before, after)
	}
	t.Logf("docker restart to verified up: %v", time.Since(begin).Round(time.Millisecond))
}
