package remediate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
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
	_ = c.Close()
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
func (d *dockerAction) client() (*client.Client, error) {
	opts := []client.Opt{client.FromEnv}
	if d.host != "" {
		opts = append(opts, client.WithHost(d.host))
	}
	c, err := client.New(opts...)
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
// daemon has started it again. Each call is bounded by ctx.
//
// A container Docker is already restarting (its restart policy is between
// two attempts) is left alone and Run returns nil: a restart now would only
// race the daemon's, and the engine's verification sees whether the gateway
// comes back. A stopped container is started.
func (d *dockerAction) Run(ctx context.Context, _ Alert) error {
	c, err := d.client()
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	host := c.DaemonHost()

	// Ping first: a clear "unreachable" error, and the version negotiation
	// happens here, where its failure is reported (the client otherwise
	// negotiates lazily and ignores a failure).
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return daemonError(ctx, host, err)
	}
	res, err := c.ContainerInspect(ctx, d.container, client.ContainerInspectOptions{})
	if err != nil {
		return d.containerError(ctx, host, "inspect", err)
	}
	if st := res.Container.State; st != nil && st.Restarting {
		return nil
	}
	timeout := d.stopSecs
	if _, err := c.ContainerRestart(ctx, d.container, client.ContainerRestartOptions{Timeout: &timeout}); err != nil {
		return d.containerError(ctx, host, "restart", err)
	}
	return nil
}

// daemonError explains a failed ping.
func daemonError(ctx context.Context, host string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("docker daemon at %s did not answer in time: %w", host, err)
	case client.IsErrConnectionFailed(err):
		return fmt.Errorf("docker daemon unreachable at %s: %w", host, err)
	}
	return fmt.Errorf("docker daemon at %s: %w", host, err)
}

// containerError explains a failed inspect or restart of the container.
func (d *dockerAction) containerError(ctx context.Context, host, op string, err error) error {
	switch {
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("container %q not found on the docker daemon at %s", d.container, host)
	case ctx.Err() != nil:
		return fmt.Errorf("docker %s of container %q timed out: %w", op, d.container, err)
	case client.IsErrConnectionFailed(err):
		return fmt.Errorf("docker daemon unreachable at %s: %w", host, err)
	}
	return fmt.Errorf("docker %s of container %q: %w", op, d.container, err)
}
