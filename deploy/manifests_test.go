package deploy

// Offline checks of deploy/kubernetes/ and deploy/systemd/:
//   - every Kubernetes manifest decodes strictly (unknown fields fail) into the
//     real API types (k8s.io/api) or, for the Prometheus Operator's CRDs, into
//     small local structs; the wiring between them is asserted (shared PID
//     namespace, probes through `clawdbot_exporter probe`, ports, selectors,
//     the job label the mixin's rules select);
//   - the checked-in PrometheusRule is a fresh render of alerts/;
//   - the systemd units are parsed and their hardening asserted; the
//     exporter's ExecStart and config are run through the real binary
//     (--config.check), and carry secrets only as file paths;
//   - systemd-analyze verify accepts the units and the drop-in;
//   - the Prometheus and Alertmanager snippets pass promtool/amtool.
// Missing tools (promtool, amtool, systemd-analyze) skip, or fail when CI=true.
// Helpers are prefixed k8s/unit: deploy_test.go shares the package.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/clawdbot-exporter/clawdbot_exporter/deploy/kubernetes/prometheusrule"
	"github.com/clawdbot-exporter/clawdbot_exporter/internal/testutil"
)

const (
	k8sDir          = "kubernetes"
	unitDir         = "systemd"
	k8sExporterPort = 9789
	k8sBinary       = "/exporter/clawdbot_exporter"
)

// ---------------------------------------------------------------- helpers

// unitNeedTool finds a tool, or skips (fails when CI=true).
func unitNeedTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testutil.Missing(t, "%s: %v", name, err)
	}
	return p
}

func unitRun(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// unitBuildExporter builds the exporter into a test temp dir.
func unitBuildExporter(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not in PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "clawdbot_exporter")
	if out, err := unitRun(t, "..", []string{"CGO_ENABLED=0"}, goTool, "build", "-o", bin, "."); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// unitExporterFlags lists the flag names the exporter accepts (from --help-long).
func unitExporterFlags(t *testing.T, bin string) map[string]bool {
	t.Helper()
	out, err := unitRun(t, "", nil, bin, "--help-long")
	if err != nil {
		t.Fatalf("--help-long: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`--(?:\[no-\])?([a-z0-9][a-z0-9.-]*)`).FindAllStringSubmatch(out, -1) {
		flags[m[1]] = true
	}
	if !flags["web.listen-address"] || !flags["config.file"] {
		t.Fatalf("could not read the exporter's flags from --help-long:\n%s", out)
	}
	return flags
}

// unitFlagName is "a.b" for "--a.b=v" or "--no-a.b".
func unitFlagName(arg string) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
	return name
}

func unitFlagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if n, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "="); ok && n == name {
			return v, true
		}
	}
	return "", false
}

// k8sDocs reads a manifest file and splits it into its YAML documents.
func k8sDocs(t *testing.T, file string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(k8sDir, file))
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		empty := true
		for _, l := range strings.Split(d, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
			}
		}
		if !empty {
			docs = append(docs, []byte(d))
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no document", file)
	}
	return docs
}

// k8sStrict decodes one document; unknown or duplicate fields fail.
func k8sStrict(t *testing.T, where string, doc []byte, v any) {
	t.Helper()
	if err := sigsyaml.UnmarshalStrict(doc, v); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
}

// ---- the Prometheus Operator's CRDs, as far as these manifests use them ----

type k8sRelabel struct {
	Action       string   `json:"action,omitempty"`
	SourceLabels []string `json:"sourceLabels,omitempty"`
	Separator    string   `json:"separator,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Replacement  *string  `json:"replacement,omitempty"`
}

type k8sScrapeEndpoint struct {
	Port              string       `json:"port"`
	Path              string       `json:"path,omitempty"`
	Scheme            string       `json:"scheme,omitempty"`
	Interval          string       `json:"interval,omitempty"`
	ScrapeTimeout     string       `json:"scrapeTimeout,omitempty"`
	HonorLabels       bool         `json:"honorLabels,omitempty"`
	Relabelings       []k8sRelabel `json:"relabelings,omitempty"`
	MetricRelabelings []k8sRelabel `json:"metricRelabelings,omitempty"`
}

type k8sNamespaceSelector struct {
	Any        bool     `json:"any,omitempty"`
	MatchNames []string `json:"matchNames,omitempty"`
}

type k8sServiceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		JobLabel          string                `json:"jobLabel,omitempty"`
		Selector          metav1.LabelSelector  `json:"selector"`
		NamespaceSelector *k8sNamespaceSelector `json:"namespaceSelector,omitempty"`
		Endpoints         []k8sScrapeEndpoint   `json:"endpoints"`
	} `json:"spec"`
}

type k8sPodMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		JobLabel            string                `json:"jobLabel,omitempty"`
		Selector            metav1.LabelSelector  `json:"selector"`
		NamespaceSelector   *k8sNamespaceSelector `json:"namespaceSelector,omitempty"`
		PodMetricsEndpoints []k8sScrapeEndpoint   `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

type k8sRule struct {
	Record        string            `json:"record,omitempty"`
	Alert         string            `json:"alert,omitempty"`
	Expr          string            `json:"expr"`
	For           string            `json:"for,omitempty"`
	KeepFiringFor string            `json:"keep_firing_for,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type k8sRuleGroup struct {
	Name     string    `json:"name"`
	Interval string    `json:"interval,omitempty"`
	Limit    *int      `json:"limit,omitempty"`
	Rules    []k8sRule `json:"rules"`
}

type k8sPrometheusRule struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Groups []k8sRuleGroup `json:"groups"`
	} `json:"spec"`
}

type k8sKustomization struct {
	metav1.TypeMeta `json:",inline"`
	Namespace       string   `json:"namespace,omitempty"`
	Resources       []string `json:"resources"`
	Labels          []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
		IncludeTemplates bool              `json:"includeTemplates,omitempty"`
	} `json:"labels,omitempty"`
}

// k8sManifests is every object under deploy/kubernetes/, decoded strictly.
type k8sManifests struct {
	deployment     *appsv1.Deployment
	service        *corev1.Service
	secret         *corev1.Secret
	pvc            *corev1.PersistentVolumeClaim
	serviceMonitor *k8sServiceMonitor
	podMonitor     *k8sPodMonitor
	rule           *k8sPrometheusRule
	kustomization  *k8sKustomization
	files          map[string]string // file -> kind
}

func k8sLoad(t *testing.T) *k8sManifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sDir, err)
	}
	m := &k8sManifests{files: map[string]string{}}
	for _, path := range files {
		file := filepath.Base(path)
		for i, doc := range k8sDocs(t, file) {
			where := fmt.Sprintf("%s[%d]", file, i)
			var tm metav1.TypeMeta
			if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			gvk := tm.APIVersion + "/" + tm.Kind
			set := func(dst any, have bool) {
				if have {
					t.Fatalf("%s: a second %s; the tests expect one", where, gvk)
				}
				k8sStrict(t, where, doc, dst)
			}
			switch gvk {
			case "apps/v1/Deployment":
				set(&m.deployment, m.deployment != nil)
			case "v1/Service":
				set(&m.service, m.service != nil)
			case "v1/Secret":
				set(&m.secret, m.secret != nil)
			case "v1/PersistentVolumeClaim":
				set(&m.pvc, m.pvc != nil)
			case "monitoring.coreos.com/v1/ServiceMonitor":
				set(&m.serviceMonitor, m.serviceMonitor != nil)
			case "monitoring.coreos.com/v1/PodMonitor":
				set(&m.podMonitor, m.podMonitor != nil)
			case "monitoring.coreos.com/v1/PrometheusRule":
				set(&m.rule, m.rule != nil)
			case "kustomize.config.k8s.io/v1beta1/Kustomization":
				set(&m.kustomization, m.kustomization != nil)
			default:
				t.Fatalf("%s: unexpected %q: add it to the test", where, gvk)
			}
			m.files[file] = tm.Kind
		}
	}
	for name, missing := range map[string]bool{
		"Deployment": m.deployment == nil, "Service": m.service == nil, "Secret": m.secret == nil,
		"PersistentVolumeClaim": m.pvc == nil, "ServiceMonitor": m.serviceMonitor == nil,
		"PodMonitor": m.podMonitor == nil, "PrometheusRule": m.rule == nil, "Kustomization": m.kustomization == nil,
	} {
		if missing {
			t.Errorf("no %s in %s", name, k8sDir)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

func k8sContainer(t *testing.T, cs []corev1.Container, name string) *corev1.Container {
	t.Helper()
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

func k8sVolume(t *testing.T, spec *corev1.PodSpec, name string) *corev1.Volume {
	t.Helper()
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	t.Fatalf("no volume %q", name)
	return nil
}

func k8sMountAt(c *corev1.Container, path string) (corev1.VolumeMount, bool) {
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}

// k8sUID is the uid a container runs as: its own securityContext, else the pod's.
func k8sUID(spec *corev1.PodSpec, c *corev1.Container) int64 {
	if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
		return *c.SecurityContext.RunAsUser
	}
	if spec.SecurityContext != nil && spec.SecurityContext.RunAsUser != nil {
		return *spec.SecurityContext.RunAsUser
	}
	return -1
}

func k8sRunAsNonRoot(spec *corev1.PodSpec, c *corev1.Container) bool {
	if c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil {
		return *c.SecurityContext.RunAsNonRoot
	}
	return spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot
}

// k8sMixinJob is the job the mixin's rendered rules select.
func k8sMixinJob(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../alerts/clawdbot-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`job=\\?"([^"\\]+)\\?"`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no job=\"...\" selector in alerts/clawdbot-alerts.yaml")
	}
	return string(m[1])
}

// ---------------------------------------------------------------- Kubernetes

func TestK8sManifestsDecodeStrictly(t *testing.T) {
	m := k8sLoad(t)
	// Every file but the Secret example and the alternative monitor is applied by the kustomization.
	k := m.kustomization
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" {
		t.Errorf("kustomization apiVersion %q", k.APIVersion)
	}
	for _, r := range k.Resources {
		if _, ok := m.files[r]; !ok {
			t.Errorf("kustomization lists %s, which is not a manifest here", r)
		}
	}
	if slices.Contains(k.Resources, "servicemonitor.yaml") == slices.Contains(k.Resources, "podmonitor.yaml") {
		t.Errorf("kustomization must apply exactly one of servicemonitor.yaml and podmonitor.yaml (both scrape the pod twice): %v", k.Resources)
	}
	for file, kind := range m.files {
		switch kind {
		case "Kustomization", "Secret", "PodMonitor", "ServiceMonitor":
		default:
			if !slices.Contains(k.Resources, file) {
				t.Errorf("kustomization does not apply %s (%s)", file, kind)
			}
		}
	}
	for _, r := range k.Resources {
		if m.files[r] == "Secret" {
			t.Errorf("kustomization applies the example Secret %s: its token is a placeholder", r)
		}
	}
	for _, l := range k.Labels {
		if l.IncludeSelectors {
			t.Error("kustomization labels must not change selectors (Deployment selectors are immutable)")
		}
	}
}

func TestK8sDeploymentSidecar(t *testing.T) {
	m := k8sLoad(t)
	d := m.deployment
	spec := &d.Spec.Template.Spec

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Error("replicas must be 1: the gateway's lock admits one gateway per state")
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %q: a rolling update runs two gateways on one state; want Recreate", d.Spec.Strategy.Type)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("the Deployment's selector does not match its pod template's labels: %v", err)
	}
	if spec.ShareProcessNamespace == nil || !*spec.ShareProcessNamespace {
		t.Fatal("shareProcessNamespace must be true: the pid in the gateway's lock is a pid of the pod's namespace")
	}

	gw := k8sContainer(t, spec.Containers, "gateway")
	ex := k8sContainer(t, spec.Containers, "exporter")

	// The gateway's probes are the exporter's probe subcommand.
	for name, p := range map[string]*corev1.Probe{"livenessProbe": gw.LivenessProbe, "readinessProbe": gw.ReadinessProbe, "startupProbe": gw.StartupProbe} {
		if p == nil || p.Exec == nil {
			t.Errorf("gateway %s: want an exec probe", name)
			continue
		}
		cmd := p.Exec.Command
		if len(cmd) < 2 || cmd[0] != k8sBinary || cmd[1] != "probe" {
			t.Errorf("gateway %s: %q, want [%s probe ...]", name, cmd, k8sBinary)
			continue
		}
		v, ok := unitFlagValue(cmd[2:], "probe.timeout")
		if !ok {
			t.Errorf("gateway %s: no --probe.timeout", name)
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d >= time.Duration(p.TimeoutSeconds)*time.Second {
			t.Errorf("gateway %s: --probe.timeout=%s must be shorter than timeoutSeconds %d", name, v, p.TimeoutSeconds)
		}
	}
	if gw.LivenessProbe != nil && gw.StartupProbe == nil && gw.LivenessProbe.InitialDelaySeconds < 60 {
		t.Error("gateway: a liveness probe without startupProbe kills a gateway that boots slowly")
	}

	// The binary reaches the gateway container through an emptyDir that an
	// initContainer fills from the exporter's image.
	binMount, ok := k8sMountAt(gw, filepath.Dir(k8sBinary))
	if !ok {
		t.Fatalf("gateway: nothing mounted at %s", filepath.Dir(k8sBinary))
	}
	if !binMount.ReadOnly {
		t.Errorf("gateway: %s must be mounted read-only", binMount.MountPath)
	}
	if v := k8sVolume(t, spec, binMount.Name); v.EmptyDir == nil {
		t.Errorf("volume %s: want an emptyDir (image volumes are noexec)", binMount.Name)
	}
	filled := false
	for i := range spec.InitContainers {
		ic := &spec.InitContainers[i]
		dst, ok := k8sMountAt(ic, filepath.Dir(k8sBinary))
		if !ok || dst.Name != binMount.Name || dst.ReadOnly {
			continue
		}
		filled = true
		if len(ic.Command) != 3 || ic.Command[0] != "cp" || ic.Command[2] != k8sBinary {
			t.Errorf("initContainer %s: %q, want [cp <exporter binary> %s]", ic.Name, ic.Command, k8sBinary)
			continue
		}
		src := ic.Command[1]
		fromImage := ic.Image == ex.Image
		for _, vm := range ic.VolumeMounts {
			if rel, err := filepath.Rel(vm.MountPath, src); err == nil && !strings.HasPrefix(rel, "..") {
				v := k8sVolume(t, spec, vm.Name)
				if v.Image != nil && v.Image.Reference == ex.Image {
					fromImage = true
					if rel != "bin/clawdbot_exporter" {
						t.Errorf("initContainer %s copies %s; the exporter image has /bin/clawdbot_exporter", ic.Name, src)
					}
				}
			}
		}
		if !fromImage {
			t.Errorf("initContainer %s copies %s from neither the exporter's image (%s) nor an image volume of it", ic.Name, src, ex.Image)
		}
		if !k8sRunAsNonRoot(spec, ic) {
			t.Errorf("initContainer %s: must run as non-root", ic.Name)
		}
	}
	if !filled {
		t.Errorf("no initContainer writes the %s volume", binMount.Name)
	}

	// One memory-backed /tmp for both: the lock directory.
	gwTmp, ok1 := k8sMountAt(gw, "/tmp")
	exTmp, ok2 := k8sMountAt(ex, "/tmp")
	if !ok1 || !ok2 || gwTmp.Name != exTmp.Name || gwTmp.SubPath != exTmp.SubPath {
		t.Fatalf("gateway and exporter must share one volume at /tmp (the lock directory): %v %v", gwTmp, exTmp)
	}
	if v := k8sVolume(t, spec, gwTmp.Name); v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory {
		t.Errorf("volume %s: want emptyDir with medium Memory (a lock must not outlive the pod)", gwTmp.Name)
	}
	if !exTmp.ReadOnly {
		t.Error("exporter: /tmp must be read-only (it only watches the lock)")
	}
	for _, e := range gw.Env {
		if e.Name == "TMPDIR" && e.Value != "/tmp" {
			t.Errorf("gateway TMPDIR=%q moves its lock out of the shared /tmp", e.Value)
		}
	}

	// The exporter: non-root, read-only, no capabilities, the gateway's uid.
	sc := ex.SecurityContext
	if sc == nil {
		t.Fatal("exporter: no securityContext")
	}
	if !k8sRunAsNonRoot(spec, ex) {
		t.Error("exporter: runAsNonRoot must be true")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("exporter: readOnlyRootFilesystem must be true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("exporter: allowPrivilegeEscalation must be false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("exporter: privileged")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Error("exporter: capabilities must drop ALL and add none")
	}
	uid := k8sUID(spec, ex)
	if uid <= 0 || uid != k8sUID(spec, gw) {
		t.Errorf("exporter uid %d, gateway uid %d: the same non-root uid reads the gateway's /proc and 0600 state", uid, k8sUID(spec, gw))
	}
	for _, vm := range ex.VolumeMounts {
		if !vm.ReadOnly {
			t.Errorf("exporter: volume %s at %s must be read-only", vm.Name, vm.MountPath)
		}
	}

	// Ports and flags.
	var metricsPort *corev1.ContainerPort
	for i := range ex.Ports {
		if ex.Ports[i].ContainerPort == k8sExporterPort {
			metricsPort = &ex.Ports[i]
		}
	}
	if metricsPort == nil || metricsPort.Name == "" {
		t.Fatalf("exporter: no named containerPort %d", k8sExporterPort)
	}
	if len(ex.Command) != 0 {
		t.Errorf("exporter: command %q overrides the image's entrypoint; use args", ex.Command)
	}
	for _, a := range ex.Args {
		if !strings.HasPrefix(a, "--") {
			t.Errorf("exporter arg %q: only flags (the image's entrypoint is the exporter; serve is the default)", a)
		}
		if n := unitFlagName(a); (strings.Contains(n, "token") || strings.Contains(n, "password")) && !strings.HasSuffix(n, "-file") {
			t.Errorf("exporter arg %q: a secret on the command line", a)
		}
	}
	if v, _ := unitFlagValue(ex.Args, "web.listen-address"); !strings.HasSuffix(v, ":"+strconv.Itoa(k8sExporterPort)) {
		t.Errorf("exporter --web.listen-address=%q, want :%d", v, k8sExporterPort)
	}
	if v, _ := unitFlagValue(ex.Args, "lock.dir"); v != fmt.Sprintf("/tmp/clawdbot-%d", k8sUID(spec, gw)) {
		t.Errorf("exporter --lock.dir=%q, want the gateway's /tmp/clawdbot-<uid> (uid %d)", v, k8sUID(spec, gw))
	}
	for _, p := range []*corev1.Probe{ex.LivenessProbe, ex.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || (p.HTTPGet.Port != intstr.FromString(metricsPort.Name) && p.HTTPGet.Port != intstr.FromInt32(k8sExporterPort)) {
			t.Errorf("exporter: want HTTP probes on the metrics port, got %+v", p)
		}
	}

	// The gateway's config file: the same path (the lock's name hashes it) on the same volume.
	if cp, ok := unitFlagValue(ex.Args, "gateway.config-path"); ok {
		dir := filepath.Dir(cp)
		em, ok1 := k8sMountAt(ex, dir)
		gm, ok2 := k8sMountAt(gw, dir)
		if !ok1 || !ok2 || em.Name != gm.Name || em.SubPath != gm.SubPath {
			t.Errorf("--gateway.config-path=%s: %s must be the gateway's own directory, mounted at the same path", cp, dir)
		}
	}
	// The token: a file from the Secret, never a literal.
	if tf, ok := unitFlagValue(ex.Args, "gateway.token-file"); ok {
		tm, ok := k8sMountAt(ex, filepath.Dir(tf))
		if !ok {
			t.Fatalf("--gateway.token-file=%s: nothing mounted at %s", tf, filepath.Dir(tf))
		}
		v := k8sVolume(t, spec, tm.Name)
		if v.Secret == nil || v.Secret.SecretName != m.secret.Name {
			t.Errorf("--gateway.token-file: volume %s is not the Secret %s", tm.Name, m.secret.Name)
		} else {
			found := false
			for _, it := range v.Secret.Items {
				if it.Path == filepath.Base(tf) {
					_, found = m.secret.StringData[it.Key]
				}
			}
			if !found {
				t.Errorf("--gateway.token-file=%s: no item of Secret %s maps to it", tf, m.secret.Name)
			}
			if mode := v.Secret.DefaultMode; mode == nil || *mode&0o040 == 0 || *mode&0o007 != 0 {
				t.Errorf("secret volume mode %v: want group-readable (fsGroup) and nothing for others", mode)
			}
		}
	}
	for _, c := range append(slices.Clone(spec.Containers), spec.InitContainers...) {
		for _, e := range c.Env {
			up := strings.ToUpper(e.Name)
			if (strings.Contains(up, "TOKEN") || strings.Contains(up, "PASSWORD")) && e.Value != "" {
				t.Errorf("container %s: %s is a literal; take it from a Secret", c.Name, e.Name)
			}
			if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil && r.SecretKeyRef.Name != m.secret.Name {
				t.Errorf("container %s: %s refers to Secret %s, not %s", c.Name, e.Name, r.SecretKeyRef.Name, m.secret.Name)
			}
		}
		if c.Image == "" {
			t.Errorf("container %s: no image", c.Name)
		}
		if c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s: no memory limit", c.Name)
		}
	}
	if spec.SecurityContext == nil || spec.SecurityContext.FSGroup == nil {
		t.Error("pod: no fsGroup; the Secret and the state volume would not be readable by the non-root uid")
	}
	for _, v := range spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName != m.pvc.Name {
			t.Errorf("volume %s claims %s, the manifest is %s", v.Name, v.PersistentVolumeClaim.ClaimName, m.pvc.Name)
		}
		if v.HostPath != nil {
			t.Errorf("volume %s: hostPath", v.Name)
		}
	}
}

// The exporter's arguments are flags the exporter has.
func TestK8sExporterArgsAreRealFlags(t *testing.T) {
	m := k8sLoad(t)
	ex := k8sContainer(t, m.deployment.Spec.Template.Spec.Containers, "exporter")
	flags := unitExporterFlags(t, unitBuildExporter(t))
	for _, a := range ex.Args {
		if !flags[unitFlagName(a)] {
			t.Errorf("exporter arg %q: no such flag", a)
		}
	}
	gw := k8sContainer(t, m.deployment.Spec.Template.Spec.Containers, "gateway")
	for _, a := range gw.LivenessProbe.Exec.Command[2:] {
		if !flags[unitFlagName(a)] {
			t.Errorf("probe arg %q: no such flag", a)
		}
	}
}

func TestK8sServiceAndMonitors(t *testing.T) {
	m := k8sLoad(t)
	pod := labels.Set(m.deployment.Spec.Template.Labels)
	job := k8sMixinJob(t)

	svc := m.service
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(pod) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service selector %v does not select the gateway pod %v", svc.Spec.Selector, pod)
	}
	var port *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == k8sExporterPort {
			port = &svc.Spec.Ports[i]
		}
	}
	if port == nil || port.Name == "" {
		t.Fatalf("Service: no named port %d", k8sExporterPort)
	}
	ex := k8sContainer(t, m.deployment.Spec.Template.Spec.Containers, "exporter")
	targetOK := false
	for _, cp := range ex.Ports {
		if cp.ContainerPort == k8sExporterPort && (port.TargetPort == intstr.FromString(cp.Name) || port.TargetPort == intstr.FromInt32(cp.ContainerPort)) {
			targetOK = true
		}
	}
	if !targetOK {
		t.Errorf("Service port %s targets %s, not the exporter's %d", port.Name, port.TargetPort.String(), k8sExporterPort)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		t.Error("Service: publishNotReadyAddresses must be true: a down gateway makes the pod unready, and its metrics must still be scraped")
	}
	for _, p := range svc.Spec.Ports {
		if p.Port != k8sExporterPort {
			t.Errorf("Service exposes port %d: only the exporter's belongs here", p.Port)
		}
	}

	checkEndpoints := func(kind string, eps []k8sScrapeEndpoint, portName string) {
		t.Helper()
		if len(eps) != 1 {
			t.Errorf("%s: want one endpoint, got %d", kind, len(eps))
			return
		}
		ep := eps[0]
		if ep.Port != portName {
			t.Errorf("%s: port %q, want %q", kind, ep.Port, portName)
		}
		if ep.Path != "" && ep.Path != "/metrics" {
			t.Errorf("%s: path %q", kind, ep.Path)
		}
		iv, err1 := model.ParseDuration(ep.Interval)
		to, err2 := model.ParseDuration(ep.ScrapeTimeout)
		if err1 != nil || err2 != nil || to > iv {
			t.Errorf("%s: interval %q, scrapeTimeout %q: want durations, timeout <= interval", kind, ep.Interval, ep.ScrapeTimeout)
		}
		gotJob := ""
		for _, r := range ep.Relabelings {
			if r.TargetLabel == "job" && (r.Action == "" || r.Action == "replace") && r.Replacement != nil && len(r.SourceLabels) == 0 {
				gotJob = *r.Replacement
			}
		}
		if gotJob != job {
			t.Errorf("%s: the job label is %q, the mixin's rules select job=%q", kind, gotJob, job)
		}
	}

	sm := m.serviceMonitor
	if sm.Kind != "ServiceMonitor" || sm.Metadata.Name == "" {
		t.Errorf("ServiceMonitor: kind %q name %q", sm.Kind, sm.Metadata.Name)
	}
	smSel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || smSel.Empty() || !smSel.Matches(labels.Set(svc.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not select Service %s (labels %v): %v", sm.Spec.Selector, svc.Name, svc.Labels, err)
	}
	checkEndpoints("ServiceMonitor", sm.Spec.Endpoints, port.Name)

	pm := m.podMonitor
	if pm.Kind != "PodMonitor" || pm.Metadata.Name == "" {
		t.Errorf("PodMonitor: kind %q name %q", pm.Kind, pm.Metadata.Name)
	}
	pmSel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
	if err != nil || pmSel.Empty() || !pmSel.Matches(pod) {
		t.Errorf("PodMonitor selector %v does not select the gateway pod %v: %v", pm.Spec.Selector, pod, err)
	}
	exPortName := ""
	for _, cp := range ex.Ports {
		if cp.ContainerPort == k8sExporterPort {
			exPortName = cp.Name
		}
	}
	checkEndpoints("PodMonitor", pm.Spec.PodMetricsEndpoints, exPortName)

	if m.secret.Type != corev1.SecretTypeOpaque || m.secret.StringData["token"] == "" {
		t.Errorf("Secret example: want type Opaque with stringData.token")
	}
}

// The checked-in PrometheusRule is a fresh render of alerts/, and its groups are valid rules.
func TestK8sPrometheusRuleFresh(t *testing.T) {
	want, err := prometheusrule.RenderFiles("..")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", prometheusrule.Output))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run `go run ./deploy/kubernetes/gen` (after the mixin's alerts/ render)", prometheusrule.Output)
	}

	m := k8sLoad(t)
	r := m.rule
	if r.Metadata.Name == "" || len(r.Spec.Groups) == 0 {
		t.Fatal("PrometheusRule: no name or no groups")
	}
	// The same groups, rules and order as the rule files.
	var names []string
	for _, src := range prometheusrule.Sources {
		var f struct {
			Groups []k8sRuleGroup `json:"groups"`
		}
		b, err := os.ReadFile(filepath.Join("..", src))
		if err != nil {
			t.Fatal(err)
		}
		k8sStrict(t, src, b, &f)
		for _, g := range f.Groups {
			names = append(names, fmt.Sprintf("%s/%d", g.Name, len(g.Rules)))
		}
	}
	var got2 []string
	restart := 0
	for _, g := range r.Spec.Groups {
		got2 = append(got2, fmt.Sprintf("%s/%d", g.Name, len(g.Rules)))
		for _, rule := range g.Rules {
			if (rule.Alert == "") == (rule.Record == "") || rule.Expr == "" {
				t.Errorf("group %s: a rule needs exactly one of alert/record and an expr: %+v", g.Name, rule)
			}
			if rule.Labels["remediation"] == "restart" {
				restart++
			}
		}
	}
	if !slices.Equal(names, got2) {
		t.Errorf("PrometheusRule groups %v, rule files %v", got2, names)
	}
	if restart == 0 {
		t.Error("no alert labelled remediation=\"restart\"")
	}

	// promtool checks the groups as Prometheus would load them.
	promtool := unitNeedTool(t, "promtool")
	var generic map[string]any
	if err := sigsyaml.Unmarshal(got, &generic); err != nil {
		t.Fatal(err)
	}
	spec, _ := generic["spec"].(map[string]any)
	out, err := sigsyaml.Marshal(map[string]any{"groups": spec["groups"]})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := unitRun(t, "", nil, promtool, "check", "rules", path); err != nil {
		t.Fatalf("promtool check rules (PrometheusRule spec.groups): %v\n%s", err, res)
	}
}

// ---------------------------------------------------------------- systemd

// unitFile is a parsed systemd unit: section -> ordered key/value pairs
// (keys repeat; an empty value resets a list).
type unitFile map[string][]unitKV

type unitKV struct{ key, value string }

func unitParse(t *testing.T, path string) unitFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section := ""
	var pending string
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if pending == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";")) {
			continue
		}
		if pending != "" && (strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";")) {
			continue // comments inside a continued line are skipped by systemd
		}
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, pending = pending+line, ""
		trimmed = strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "[") {
			if !strings.HasSuffix(trimmed, "]") {
				t.Fatalf("%s:%d: bad section header %q", path, n, trimmed)
			}
			section = trimmed[1 : len(trimmed)-1]
			continue
		}
		k, v, ok := strings.Cut(trimmed, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not key=value in a section: %q", path, n, trimmed)
		}
		u[section] = append(u[section], unitKV{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	if pending != "" {
		t.Fatalf("%s: ends in a continuation", path)
	}
	return u
}

// last is a single-valued setting (the last assignment wins).
func (u unitFile) last(section, key string) (string, bool) {
	v, ok := "", false
	for _, kv := range u[section] {
		if kv.key == key {
			v, ok = kv.value, true
		}
	}
	return v, ok
}

// all is a list setting: every assignment since the last empty one.
func (u unitFile) all(section, key string) []string {
	var out []string
	for _, kv := range u[section] {
		if kv.key == key {
			if kv.value == "" {
				out = nil
				continue
			}
			out = append(out, kv.value)
		}
	}
	return out
}

func unitBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "t", "on":
		return true, true
	case "0", "no", "n", "false", "f", "off":
		return false, true
	}
	return false, false
}

// unitExecStart splits the exporter unit's ExecStart into argv.
func unitExecStart(t *testing.T, u unitFile) []string {
	t.Helper()
	execs := u.all("Service", "ExecStart")
	if len(execs) != 1 {
		t.Fatalf("want one ExecStart, got %q", execs)
	}
	if strings.ContainsAny(execs[0], `"'`) {
		t.Fatalf("ExecStart %q: no quoting needed, none expected", execs[0])
	}
	return strings.Fields(execs[0])
}

func unitExporterUnit(t *testing.T) unitFile {
	return unitParse(t, filepath.Join(unitDir, "clawdbot_exporter.service"))
}

func TestSystemdExporterUnitHardening(t *testing.T) {
	u := unitExporterUnit(t)
	want := map[string]string{
		"ProtectSystem":           "strict",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"SystemCallFilter":        "@system-service",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectControlGroups":    "yes",
		"RestrictSUIDSGID":        "yes",
		"LockPersonality":         "yes",
		"SystemCallArchitectures": "native",
	}
	for k, w := range want {
		v, ok := u.last("Service", k)
		if !ok || v != w {
			t.Errorf("[Service] %s=%q (set: %v), want %q", k, v, ok, w)
		}
	}
	// A user: dedicated or dynamic, never root.
	user, hasUser := u.last("Service", "User")
	dyn, _ := u.last("Service", "DynamicUser")
	isDyn, _ := unitBool(dyn)
	if (!hasUser || user == "" || user == "root" || user == "0") && !isDyn {
		t.Errorf("User=%q DynamicUser=%q: want a dedicated user or DynamicUser", user, dyn)
	}
	// The gateway's home (its state) readable, /run/user (its bus) reachable.
	ph, _ := u.last("Service", "ProtectHome")
	if ph != "read-only" && len(u.all("Service", "ReadOnlyPaths")) == 0 {
		t.Errorf("ProtectHome=%q: want read-only (or ReadOnlyPaths= for the gateway's state)", ph)
	}
	if on, _ := unitBool(ph); on || ph == "tmpfs" {
		t.Errorf("ProtectHome=%s hides the gateway's state and /run/user", ph)
	}
	// The lock directory in the real /tmp.
	pt, _ := u.last("Service", "PrivateTmp")
	if on, _ := unitBool(pt); (on || isDyn) && !slices.ContainsFunc(u.all("Service", "BindReadOnlyPaths"), func(s string) bool {
		return strings.Contains(s, "/tmp/clawdbot-")
	}) {
		t.Error("a private /tmp hides the gateway's lock directory: PrivateTmp=no, or BindReadOnlyPaths=/tmp/clawdbot-<uid>")
	}
	for _, k := range []string{"ProtectProc", "PrivateUsers", "PrivatePIDs"} {
		if v, ok := u.last("Service", k); ok && v != "no" && v != "default" {
			t.Errorf("%s=%s hides the gateway's process from the exporter", k, v)
		}
	}
	// Secrets: credentials only.
	creds := map[string]bool{}
	for _, c := range u.all("Service", "LoadCredential") {
		id, src, ok := strings.Cut(c, ":")
		if !ok || !filepath.IsAbs(src) {
			t.Errorf("LoadCredential=%s: want id:/absolute/path", c)
		}
		creds[id] = true
	}
	if !creds["webhook-token"] || !creds["gateway-token"] {
		t.Errorf("LoadCredential: want webhook-token and gateway-token, got %v", creds)
	}
	for _, k := range []string{"Environment", "EnvironmentFile", "SetCredential"} {
		for _, v := range u.all("Service", k) {
			up := strings.ToUpper(v)
			if strings.Contains(up, "TOKEN") || strings.Contains(up, "PASSWORD") || k == "SetCredential" {
				t.Errorf("%s=%s: secrets go through LoadCredential files only", k, v)
			}
		}
	}
	if w, _ := u.last("Install", "WantedBy"); w != "multi-user.target" {
		t.Errorf("WantedBy=%q, want multi-user.target (a system unit)", w)
	}
}

// ExecStart is the binary and flags; secrets appear only as credential file paths.
func TestSystemdExporterExecStart(t *testing.T) {
	u := unitExporterUnit(t)
	argv := unitExecStart(t, u)
	if strings.ContainsAny(argv[0][:1], "-@+!:|") {
		t.Errorf("ExecStart prefix %q: no privileged (+ !) or special execution", argv[0][:1])
	}
	if !filepath.IsAbs(argv[0]) || filepath.Base(argv[0]) != "clawdbot_exporter" {
		t.Errorf("ExecStart runs %q, want the absolute path of clawdbot_exporter", argv[0])
	}
	creds := map[string]bool{}
	for _, c := range u.all("Service", "LoadCredential") {
		id, _, _ := strings.Cut(c, ":")
		creds[id] = true
	}
	for _, a := range argv[1:] {
		if !strings.HasPrefix(a, "--") || !strings.Contains(a, "=") && !strings.HasPrefix(a, "--no-") {
			t.Errorf("ExecStart arg %q: want --flag=value only (no subcommand, no separate values)", a)
			continue
		}
		name := unitFlagName(a)
		_, val, _ := strings.Cut(a, "=")
		secret := strings.Contains(name, "token") || strings.Contains(name, "password")
		switch {
		case secret && !strings.HasSuffix(name, "-file"):
			t.Errorf("ExecStart arg %q: a secret on the command line (ps shows it to everyone)", a)
		case secret && !strings.HasPrefix(val, "${CREDENTIALS_DIRECTORY}/"):
			t.Errorf("ExecStart arg %q: secret files come from LoadCredential (${CREDENTIALS_DIRECTORY}/...)", a)
		case secret && !creds[strings.TrimPrefix(val, "${CREDENTIALS_DIRECTORY}/")]:
			t.Errorf("ExecStart arg %q: no LoadCredential for it", a)
		}
	}
	if v, _ := unitFlagValue(argv[1:], "remediation.token-file"); v != "${CREDENTIALS_DIRECTORY}/webhook-token" {
		t.Errorf("--remediation.token-file=%q, want ${CREDENTIALS_DIRECTORY}/webhook-token", v)
	}
	if v, _ := unitFlagValue(argv[1:], "web.listen-address"); !strings.HasSuffix(v, ":"+strconv.Itoa(k8sExporterPort)) {
		t.Errorf("--web.listen-address=%q, want port %d", v, k8sExporterPort)
	}
	if v, _ := unitFlagValue(argv[1:], "lock.dir"); !regexp.MustCompile(`^/tmp/clawdbot-\d+$`).MatchString(v) {
		t.Errorf("--lock.dir=%q, want the gateway's /tmp/clawdbot-<uid>", v)
	}
}

// The real exporter accepts the unit's flags and the example config (--config.check),
// with the credentials directory and /etc paths moved into a temp dir.
func TestSystemdExporterConfigCheck(t *testing.T) {
	bin := unitBuildExporter(t)
	flags := unitExporterFlags(t, bin)
	u := unitExporterUnit(t)
	argv := unitExecStart(t, u)
	for _, a := range argv[1:] {
		if !flags[unitFlagName(a)] {
			t.Errorf("ExecStart arg %q: the exporter has no such flag", a)
		}
	}

	tmp := t.TempDir()
	credDir := filepath.Join(tmp, "credentials")
	if err := os.Mkdir(credDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range u.all("Service", "LoadCredential") {
		id, _, _ := strings.Cut(c, ":")
		if err := os.WriteFile(filepath.Join(credDir, id), []byte("test-"+id+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath, ok := unitFlagValue(argv[1:], "config.file")
	if !ok {
		t.Fatal("ExecStart has no --config.file")
	}
	if filepath.Base(cfgPath) != "clawdbot_exporter.yml" {
		t.Fatalf("--config.file=%s, the example here is clawdbot_exporter.yml", cfgPath)
	}
	cfg, err := os.ReadFile(filepath.Join(unitDir, "clawdbot_exporter.yml"))
	if err != nil {
		t.Fatal(err)
	}
	// $CREDENTIALS_DIRECTORY is /run/credentials/<unit name>: the config may name it literally.
	fixed := "/run/credentials/clawdbot_exporter.service/"
	if !bytes.Contains(cfg, []byte(fixed)) {
		t.Errorf("the example config takes no token from %s", fixed)
	}
	cfg = bytes.ReplaceAll(cfg, []byte(fixed), []byte(credDir+"/"))
	if bytes.Contains(cfg, []byte("/run/credentials/")) {
		t.Errorf("the example config names another unit's credentials")
	}
	localCfg := filepath.Join(tmp, "clawdbot_exporter.yml")
	if err := os.WriteFile(localCfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{}
	for _, a := range argv[1:] {
		a = strings.ReplaceAll(a, "${CREDENTIALS_DIRECTORY}", credDir)
		if unitFlagName(a) == "config.file" {
			a = "--config.file=" + localCfg
		}
		args = append(args, a)
	}
	args = append(args, "--config.check")
	out, err := unitRun(t, tmp, []string{"HOME=" + tmp}, bin, args...)
	if err != nil {
		t.Fatalf("clawdbot_exporter %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !strings.Contains(out, "OK: 1 gateway(s), 1 remediation target(s)") {
		t.Errorf("--config.check: %s", out)
	}

	// The remediation target restarts the gateway's user unit over the user bus.
	for _, want := range []string{"type: systemd", "unit: clawdbot-gateway.service", "bus: user"} {
		if !bytes.Contains(cfg, []byte(want)) {
			t.Errorf("the example config's action lacks %q", want)
		}
	}
}

func TestSystemdRemediationDropIn(t *testing.T) {
	base := unitExporterUnit(t)
	d := unitParse(t, filepath.Join(unitDir, "clawdbot_exporter.service.d", "remediation-user-bus.conf"))
	if len(d) != 1 || d["Service"] == nil {
		t.Fatalf("the drop-in must hold only a [Service] section, has %v", d)
	}
	user, _ := d.last("Service", "User")
	baseUser, _ := base.last("Service", "User")
	if user == "" || user == "root" || user == "0" || user == baseUser {
		t.Errorf("drop-in User=%q: want the gateway's (non-root) user, not the exporter's %q", user, baseUser)
	}
	bus := ""
	for _, e := range d.all("Service", "Environment") {
		if v, ok := strings.CutPrefix(e, "DBUS_SESSION_BUS_ADDRESS="); ok {
			bus = v
		}
	}
	m := regexp.MustCompile(`^unix:path=/run/user/(\d+)/bus$`).FindStringSubmatch(bus)
	if m == nil {
		t.Fatalf("drop-in DBUS_SESSION_BUS_ADDRESS=%q, want unix:path=/run/user/<uid>/bus", bus)
	}
	uid := m[1]
	lockDir, _ := unitFlagValue(unitExecStart(t, base)[1:], "lock.dir")
	if lockDir != "/tmp/clawdbot-"+uid {
		t.Errorf("the bus is uid %s's, the lock directory %s", uid, lockDir)
	}
	if rw := d.all("Service", "ReadWritePaths"); !slices.Contains(rw, "-"+lockDir) && !slices.Contains(rw, lockDir) {
		t.Errorf("drop-in ReadWritePaths=%v: remove_stale_lock needs %s writable", rw, lockDir)
	}
	if v, _ := d.last("Service", "RemoveIPC"); v != "no" {
		if on, _ := unitBool(mustLast(base, "RemoveIPC")); on {
			t.Errorf("RemoveIPC=yes with User=%s would delete the gateway user's IPC objects when the exporter stops", user)
		}
	}
	// The drop-in changes who, not how much: no hardening setting is relaxed.
	allowed := map[string]bool{"User": true, "Group": true, "Environment": true, "RemoveIPC": true, "ReadWritePaths": true, "SupplementaryGroups": true}
	for _, kv := range d["Service"] {
		if !allowed[kv.key] {
			t.Errorf("drop-in sets %s=%s: only the user, the bus and the lock directory change", kv.key, kv.value)
		}
	}
	// /run/user must stay reachable under the base unit's sandbox.
	if ph := mustLast(base, "ProtectHome"); ph != "read-only" && ph != "no" {
		t.Errorf("ProtectHome=%s hides /run/user/%s/bus", ph, uid)
	}
	if !strings.Contains(mustLast(base, "RestrictAddressFamilies"), "AF_UNIX") {
		t.Error("RestrictAddressFamilies without AF_UNIX: no D-Bus")
	}
}

func mustLast(u unitFile, key string) string {
	v, _ := u.last("Service", key)
	return v
}

func TestSystemdGatewayUserUnit(t *testing.T) {
	u := unitParse(t, filepath.Join(unitDir, "clawdbot-gateway.service"))
	for k, w := range map[string]string{
		"Restart":        "always",
		"RestartSec":     "10s",
		"TimeoutStopSec": "30s",
		"KillMode":       "mixed",
	} {
		if v, _ := u.last("Service", k); v != w {
			t.Errorf("[Service] %s=%q, want %q", k, v, w)
		}
	}
	if v, ok := u.last("Service", "WatchdogSec"); ok && v != "0" {
		t.Errorf("WatchdogSec=%s: Node never sends WATCHDOG=1, systemd would kill a healthy gateway", v)
	}
	for _, k := range []string{"User", "Group", "DynamicUser"} {
		if _, ok := u.last("Service", k); ok {
			t.Errorf("%s= in a user unit", k)
		}
	}
	argv := strings.Fields(strings.Join(u.all("Service", "ExecStart"), " "))
	if len(argv) < 4 || filepath.Base(argv[0]) != "node" || !strings.HasSuffix(argv[1], "dist/index.js") ||
		argv[2] != "gateway" || !strings.Contains(strings.Join(argv, " "), "--port 18789") {
		t.Errorf("ExecStart %q: want node .../dist/index.js gateway --port 18789", argv)
	}
	if w, _ := u.last("Install", "WantedBy"); w != "default.target" {
		t.Errorf("WantedBy=%q: a user unit wants default.target", w)
	}
	if v, _ := u.last("Unit", "Description"); v == "" {
		t.Error("no Description")
	}
}

// ---- the Prometheus and Alertmanager snippets ----

func TestSystemdPrometheusSnippet(t *testing.T) {
	promtool := unitNeedTool(t, "promtool")
	b, err := os.ReadFile(filepath.Join(unitDir, "prometheus-snippet.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := sigsyaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	job := k8sMixinJob(t)
	u := unitExporterUnit(t)
	listen, _ := unitFlagValue(unitExecStart(t, u)[1:], "web.listen-address")
	found := false
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != job {
			continue
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				if target == listen || strings.HasPrefix(listen, ":") && strings.HasSuffix(target, listen) {
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf("no scrape config job %q targets the exporter's %s", job, listen)
	}
	// Every rendered rule file is loaded.
	tmp := t.TempDir()
	var bases []string
	for _, rf := range cfg.RuleFiles {
		bases = append(bases, filepath.Base(rf))
	}
	alerts, _ := filepath.Glob("../alerts/*.yaml")
	if len(alerts) == 0 {
		t.Fatal("no ../alerts/*.yaml")
	}
	for _, a := range alerts {
		if !slices.Contains(bases, filepath.Base(a)) {
			t.Errorf("rule_files %v lack %s", cfg.RuleFiles, filepath.Base(a))
		}
	}
	// promtool resolves rule_files: move them into the temp dir along with the rules.
	text := string(b)
	for _, rf := range cfg.RuleFiles {
		src := filepath.Join("..", "alerts", filepath.Base(rf))
		dst := filepath.Join(tmp, "rules", filepath.Base(rf))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatalf("rule file %s: %v", rf, err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
		text = strings.ReplaceAll(text, rf, dst)
	}
	path := filepath.Join(tmp, "prometheus.yml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := unitRun(t, tmp, nil, promtool, "check", "config", path)
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	if !strings.Contains(out, fmt.Sprintf("SUCCESS: %d rule files found", len(alerts))) {
		t.Errorf("promtool did not load the rules:\n%s", out)
	}
}

func TestSystemdAlertmanagerSnippet(t *testing.T) {
	amtool := unitNeedTool(t, "amtool")
	path := filepath.Join(unitDir, "alertmanager-snippet.yml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type route struct {
		Receiver string   `json:"receiver"`
		Matchers []string `json:"matchers"`
		Continue bool     `json:"continue"`
	}
	var cfg struct {
		Route struct {
			Routes []route `json:"routes"`
		} `json:"route"`
		Receivers []struct {
			Name           string `json:"name"`
			WebhookConfigs []struct {
				URL          string `json:"url"`
				SendResolved bool   `json:"send_resolved"`
				HTTPConfig   struct {
					Authorization struct {
						Type            string `json:"type"`
						Credentials     string `json:"credentials"`
						CredentialsFile string `json:"credentials_file"`
					} `json:"authorization"`
				} `json:"http_config"`
			} `json:"webhook_configs"`
		} `json:"receivers"`
	}
	if err := sigsyaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	var rem *route
	for i, r := range cfg.Route.Routes {
		for _, mt := range r.Matchers {
			if strings.ReplaceAll(mt, " ", "") == `remediation="restart"` {
				rem = &cfg.Route.Routes[i]
			}
		}
	}
	if rem == nil {
		t.Fatal(`no route matching remediation="restart"`)
	}
	if !rem.Continue {
		t.Error("the remediation route must continue: people still get notified")
	}
	u := unitExporterUnit(t)
	listen, _ := unitFlagValue(unitExecStart(t, u)[1:], "web.listen-address")
	ok := false
	for _, r := range cfg.Receivers {
		if r.Name != rem.Receiver {
			continue
		}
		for _, w := range r.WebhookConfigs {
			ok = true
			if !strings.HasSuffix(w.URL, listen+"/alertmanager/webhook") && !strings.HasSuffix(w.URL, strings.TrimPrefix(listen, "0.0.0.0")+"/alertmanager/webhook") {
				t.Errorf("webhook url %s is not the exporter's %s/alertmanager/webhook", w.URL, listen)
			}
			a := w.HTTPConfig.Authorization
			if a.CredentialsFile == "" || a.Credentials != "" || (a.Type != "" && a.Type != "Bearer") {
				t.Errorf("webhook authorization %+v: want a Bearer credentials_file, no inline credentials", a)
			}
			if !w.SendResolved {
				t.Error("send_resolved: false hides resolutions from the audit trail")
			}
		}
	}
	if !ok {
		t.Fatalf("receiver %q has no webhook_configs", rem.Receiver)
	}
	out, err := unitRun(t, "", nil, amtool, "check-config", path)
	if err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("amtool check-config:\n%s", out)
	}
}

// Every file under deploy/systemd is known to the tests above.
func TestSystemdFilesCovered(t *testing.T) {
	known := map[string]bool{
		"clawdbot_exporter.service":                             true,
		"clawdbot_exporter.service.d/remediation-user-bus.conf": true,
		"clawdbot_exporter.yml":                                 true,
		"clawdbot_exporter.sysusers":                            true,
		"clawdbot-gateway.service":                              true,
		"prometheus-snippet.yml":                                true,
		"alertmanager-snippet.yml":                              true,
		"clawdbot_exporter-watch.yml":                           true, // single_host_test.go
		"clawdbot_exporter.service.d/watch-notify.conf":         true, // single_host_test.go
	}
	err := filepath.WalkDir(unitDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(unitDir, p)
		if !known[rel] {
			return fmt.Errorf("%s is not checked by manifests_test.go", rel)
		}
		delete(known, rel)
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	for f := range known {
		t.Errorf("missing %s", f)
	}
	b, err := os.ReadFile(filepath.Join(unitDir, "clawdbot_exporter.sysusers"))
	if err != nil {
		t.Fatal(err)
	}
	u := unitExporterUnit(t)
	user, _ := u.last("Service", "User")
	if !regexp.MustCompile(`(?m)^u\s+` + regexp.QuoteMeta(user) + `\s`).Match(b) {
		t.Errorf("clawdbot_exporter.sysusers does not create User=%s", user)
	}
}

// systemd's own parser accepts the units and the drop-in: no unknown key or
// section, no bad value (systemd-analyze verify only warns about those, so
// its output is read too). The executables are replaced by this test binary:
// verify checks that they exist.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze := unitNeedTool(t, "systemd-analyze")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	copyUnit := func(rel string, replace map[string]string) string {
		b, err := os.ReadFile(filepath.Join(unitDir, rel))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for old, repl := range replace {
			if !strings.Contains(s, old) {
				t.Fatalf("%s: no %q", rel, old)
			}
			s = strings.ReplaceAll(s, old, repl)
		}
		dst := filepath.Join(tmp, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	exporter := copyUnit("clawdbot_exporter.service", map[string]string{"ExecStart=/usr/local/bin/clawdbot_exporter": "ExecStart=" + self})
	copyUnit("clawdbot_exporter.service.d/remediation-user-bus.conf", nil)
	gateway := copyUnit("clawdbot-gateway.service", map[string]string{"ExecStart=/usr/bin/node": "ExecStart=" + self})
	runtimeDir := filepath.Join(tmp, "run")
	if err := os.Mkdir(runtimeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Warnings about the host's seccomp tables and PID 1 concern this machine, not the units.
	hostNoise := regexp.MustCompile(`Failed to parse system call|Failed to read \$container`)
	for _, c := range []struct {
		unit string
		args []string
	}{
		{exporter, []string{"verify", "--man=no", exporter}},
		{gateway, []string{"verify", "--user", "--man=no", gateway}},
	} {
		out, err := unitRun(t, tmp, []string{"XDG_RUNTIME_DIR=" + runtimeDir, "SYSTEMD_LOG_COLOR=0"}, analyze, c.args...)
		var bad []string
		for _, l := range strings.Split(out, "\n") {
			if l = strings.TrimSpace(l); l != "" && !hostNoise.MatchString(l) {
				bad = append(bad, l)
			}
		}
		if err != nil || len(bad) > 0 {
			t.Errorf("systemd-analyze %s: %v\n%s", strings.Join(c.args, " "), err, strings.Join(bad, "\n"))
		}
	}
}
