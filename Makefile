# Build, test and lint clawdbot_exporter. `make build` and `make test` need
# only Go (the version of go.mod's go line); `make e2e` installs real
# gateways (npm) and needs Prometheus, Alertmanager and a few tools (e2e-deps).
GO        ?= go
BIN       ?= clawdbot_exporter
PKG       := github.com/prometheus/common/version
VERSION   := $(shell cat VERSION)
REVISION  := $(shell git rev-parse --verify -q HEAD || echo unknown)
BRANCH    := $(shell git symbolic-ref -q --short HEAD || echo unknown)
# The same version stamps .promu.yml sets, so `make build` and promu agree.
LDFLAGS   := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Revision=$(REVISION) \
             -X $(PKG).Branch=$(BRANCH) -X $(PKG).BuildUser=$(shell id -un)@$(shell hostname) \
             -X $(PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)
GOLANGCI_LINT_VERSION ?= v2.15.0

.PHONY: all build test unit fmt-check vet lint e2e e2e-deps bench promu clean mixin mixin-check demo

all: build test

# A static binary (no cgo) so it runs FROM scratch and mounted into a gateway container.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags netgo,osusergo -ldflags '$(LDFLAGS)' -o $(BIN) .

test: fmt-check vet mixin-check unit

# Everything under the race detector, then the soak test at full length,
# which the race detector's slowdown would make too long.
unit:
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run '^TestSoak$$' ./collector/

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

lint:
	@command -v golangci-lint >/dev/null || $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" golangci-lint run --build-tags e2e ./...

# End-to-end tests against the real clawdbot and openclaw gateways from npm
# (installed into .cache/ by scripts/install-gateways.sh) and real promtool.
e2e: build e2e-deps
	./scripts/install-gateways.sh
	$(GO) test -tags e2e -count=1 -timeout 35m -v ./e2e/...

# What the end-to-end tests run beside Go, as command:Debian package. Missing
# ones make the tests fail with "prerequisite missing"; this says so first, and
# E2E_INSTALL=1 installs them with apt-get, as .ci/run does.
E2E_TOOLS := promtool:prometheus prometheus:prometheus prometheus-alertmanager:prometheus-alertmanager \
             ss:iproute2 chromium:chromium npm:npm python3:python3
e2e-deps:
	@missing=; for t in $(E2E_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$${missing% }" ]; then \
		if [ "$(E2E_INSTALL)" = 1 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		else \
			echo "make e2e needs: $$missing"; echo "  apt-get install -y $$missing  (or: make e2e E2E_INSTALL=1)"; exit 1; \
		fi; \
	fi

# Go benchmarks, BENCH selects them (make bench BENCH=SessionScan). The
# session store ones build a 1 GiB store first; BenchmarkScrapeReal needs a
# real gateway (BENCH_GATEWAY_URL, see collector/bench_test.go). The CPU
# comparison with blackbox_exporter is scripts/bench-compare.sh.
BENCH ?= .
bench:
	nice $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -timeout 30m ./...

# Release builds with promu, pinned in tools/go.mod.
promu:
	$(GO) tool -modfile=tools/go.mod promu build --prefix .build

clean:
	rm -rf $(BIN) .build .tarballs

# The monitoring mixin (mixin/): format its jsonnet and render it into
# alerts/*.yaml and grafana/*.json with the jsonnet pinned in tools/go.mod.
# mixin/mixin_test.go renders MIXIN_RENDER the same way and fails when the
# checked-in files differ.
JSONNET       := $(GO) tool -modfile=tools/go.mod jsonnet
JSONNETFMT    := $(GO) tool -modfile=tools/go.mod jsonnetfmt
MIXIN_RENDER  := local m = import "mixin.libsonnet"; {"alerts/clawdbot-alerts.yaml": std.manifestYamlDoc(m.prometheusAlerts, true, false), "alerts/clawdbot-rules.yaml": std.manifestYamlDoc(m.prometheusRules, true, false)} + {["grafana/" + k]: std.manifestJsonEx(m.grafanaDashboards[k], "  ") for k in std.objectFields(m.grafanaDashboards)}
mixin:
	$(JSONNETFMT) -i $$(find mixin -name '*.libsonnet' -o -name '*.jsonnet')
	$(JSONNET) -J mixin -S -c -m . -e '$(MIXIN_RENDER)'
	promtool check rules alerts/clawdbot-alerts.yaml alerts/clawdbot-rules.yaml
	$(GO) run ./deploy/kubernetes/gen

# Rendered files fresh, jsonnet formatted, alert conventions, promtool tests.
mixin-check:
	$(GO) test -count=1 ./mixin/

# The whole system on loopback: a real gateway, the exporter with remediation,
# Prometheus, Alertmanager (scripts/demo.sh). The rules are rendered with
# demo durations: a frozen gateway alerts after 20 s, not 2 min.
DEMO_RULES := .cache/demo-rules
demo: build
	mkdir -p $(DEMO_RULES)
	$(JSONNET) -J mixin -S -m $(DEMO_RULES) -e 'local m = (import "mixin.libsonnet") + {_config+:: {gatewayDownFor: "20s", gatewayWarmupSeconds: 30}}; {"clawdbot-alerts.yaml": std.manifestYamlDoc(m.prometheusAlerts, true, false), "clawdbot-rules.yaml": std.manifestYamlDoc(m.prometheusRules, true, false)}'
	./scripts/demo.sh $(DEMO_RULES)
