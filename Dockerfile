# clawdbot_exporter on an empty base. Build the static binary first, then the image:
#   make build && DOCKER_BUILDKIT=0 docker build -t clawdbot_exporter:dev .
# No build stage: it would need a golang image, and this Dockerfile must build without registry pulls.
FROM scratch

LABEL org.opencontainers.image.title="clawdbot_exporter" \
      org.opencontainers.image.description="Prometheus exporter for Clawdbot/OpenClaw gateways" \
      org.opencontainers.image.source="https://github.com/clawdbot-exporter/clawdbot_exporter" \
      org.opencontainers.image.licenses="Apache-2.0"

# `make build` links statically (CGO_ENABLED=0, netgo, osusergo): nothing else is needed at run time.
COPY clawdbot_exporter /bin/clawdbot_exporter
COPY LICENSE /LICENSE

# nobody:nogroup; scratch has no /etc/passwd, so numeric ids.
USER 65534:65534

EXPOSE 9789

# The exporter's own liveness (GET /-/healthy), not the gateway's: `probe` checks the gateway. `healthcheck`
# reads the address from the serving exporter's command line in /proc (PID 1, or the exporter of this
# container when the PID namespace is shared), so `docker run IMAGE --web.listen-address=...` stays healthy;
# https when --web.config.file enables TLS. Only --web.systemd-socket and vsock-only need an explicit
# `healthcheck --web.listen-address=...` (docker run --health-cmd, compose healthcheck.test).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/bin/clawdbot_exporter", "healthcheck"]

ENTRYPOINT ["/bin/clawdbot_exporter"]
