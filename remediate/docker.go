package remediate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/clawdbot-exporter/clawdbot_exporter/internal/dockerapi"
)

func init() { registerAction("docker", newDockerAction) }

// dockerAction restarts one container, named in the config (never by an
// alert), through the Docker Engine API.
type dockerAction struct {
	container string
	host      string // "" = DOCKER_HOST, else the local socket
	stopSecs  int
}

func newDockerAction(t Target, _ World) (Action, error) {
	spec := t.Action.Docker
	if spec == nil || spec.Container == "" {
		return nil, errors.New("action docker: container is required")
	}
	d := &dockerAction{container: spec.Container, host: spec.Host, stopSecs: stopSeconds(spec.StopTimeout.D())}
	// Building a client dials nothing; it checks the host and the DOCKER_*
	// environment now, at config load, rather than at the first alert.
	c, err := d.client()
	if err != nil {
		return nil, err
	}
	c.Close()
	return d, nil
}

// stopSeconds is the restart's stop timeout in whole seconds, as the API
// takes it: rounded up, so a container never gets less grace than configured.
func stopSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

// client is configured like the docker CLI (DOCKER_HOST, DOCKER_API_VERSION,
// DOCKER_CERT_PATH, DOCKER_TLS_VERIFY), with the target's host, when set,
// taking precedence over DOCKER_HOST. It negotiates the API version with the
// daemon on first use (Debian's Engine 20.10 speaks at most 1.41).
func (d *dockerAction) client() (*dockerapi.Client, error) {
	c, err := dockerapi.New(d.host)
	if err != nil {
		return nil, fmt.Errorf("action docker: client for %s: %w", d.where(), err)
	}
	return c, nil
}

// where names the daemon for errors made before a client exists.
func (d *dockerAction) where() string {
	if d.host != "" {
		return d.host
	}
	return "DOCKER_HOST or the local socket"
}

// Run restarts the container, stopping it with SIGTERM (or its configured
// stop signal) and SIGKILL after the stop timeout, and returns once the
// daemon has started it again. Each call is bounded by ctx. The daemon's
// restart stops the container as "by hand", so its restart policy does not
// start it a second time: one restart, whatever the policy.
//
// A container Docker is already restarting (its restart policy is between
// two attempts) is left alone and Run returns nil: a restart now would only
// race the daemon's, and the engine's verification sees whether the gateway
// comes back (Preflight holds the action before it gets here). A stopped
// container is started.
func (d *dockerAction) Run(ctx context.Context, _ Alert) error {
	c, err := d.client()
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := d.inspect(ctx, c)
	if err != nil {
		return err
	}
	if st := res.State; st != nil && st.Restarting {
		return nil
	}
	if err := c.Restart(ctx, d.container, d.stopSecs); err != nil {
		return d.containerError(ctx, c.Host(), "restart", err)
	}
	return nil
}

// inspect pings the daemon, then inspects the container. The ping gives a
// clear "unreachable" error and settles the API version the calls use, so
// a daemon too old for this client is reported there.
func (d *dockerAction) inspect(ctx context.Context, c *dockerapi.Client) (dockerapi.Container, error) {
	host := c.Host()
	if err := c.Ping(ctx); err != nil {
		return dockerapi.Container{}, daemonError(ctx, host, err)
	}
	res, err := c.Inspect(ctx, d.container)
	if err != nil {
		return dockerapi.Container{}, d.containerError(ctx, host, "inspect", err)
	}
	return res, nil
}

// Preflight implements Preflighter: it holds the restart while Docker's
// restart policy is restarting the container, and when the container is
// down because the gateway exited with 78 (configuration or lock problem:
// a restart would fail the same way; Docker has no
// RestartPreventExitStatus, so only a policy of "no", an exhausted
// on-failure:N or a person's stop leaves it there). A running container,
// frozen or not, goes on.
func (d *dockerAction) Preflight(ctx context.Context) (string, string, error) {
	c, err := d.client()
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	res, err := d.inspect(ctx, c)
	if err != nil {
		return "", "", err
	}
	st := res.State
	if st == nil {
		return "", "", fmt.Errorf("docker inspect of container %q: no state", d.container)
	}
	policy := res.RestartPolicy()
	switch {
	case st.Restarting:
		return SkipSupervisor, fmt.Sprintf("its restart policy (%s) is restarting container %s already (restart count %d, last exit code %d)",
			policy, d.container, res.RestartCount, st.ExitCode), nil
	case !st.Running && st.ExitCode == exitNeedsPerson:
		return SkipNeedsPerson, fmt.Sprintf("container %s is %s: the gateway exited with status 78 (configuration or lock problem: "+
			"a restart would fail the same way); fix what docker logs %s says, then start it", d.container, st.Status, d.container), nil
	}
	return "", "", nil
}

// daemonError explains a failed ping.
func daemonError(ctx context.Context, host string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("docker daemon at %s did not answer in time: %w", host, err)
	case dockerapi.IsConnectionFailed(err):
		return fmt.Errorf("docker daemon unreachable at %s: %w", host, err)
	}
	return fmt.Errorf("docker daemon at %s: %w", host, err)
}

// containerError explains a failed inspect or restart of the container.
func (d *dockerAction) containerError(ctx context.Context, host, op string, err error) error {
	switch {
	case dockerapi.IsNotFound(err):
		return fmt.Errorf("container %q not found on the docker daemon at %s", d.container, host)
	case ctx.Err() != nil:
		return fmt.Errorf("docker %s of container %q timed out: %w", op, d.container, err)
	case dockerapi.IsConnectionFailed(err):
		return fmt.Errorf("docker daemon unreachable at %s: %w", host, err)
	}
	return fmt.Errorf("docker %s of container %q: %w", op, d.container, err)
}
