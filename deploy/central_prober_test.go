package deploy

// Offline checks of deploy/kubernetes/central-prober/ (issue 16): every
// manifest decodes strictly, the kustomization lists them all, and the
// wiring holds: the ScrapeConfig sends every discovered gateway to the
// prober's /probe under a job the mixin treats as a probe job, with a
// module the prober's config defines; the prober's config passes the real
// binary's --config.check; its own /metrics is the mixin's exporter job.

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/clawdbot-exporter/clawdbot_exporter/config"
)

const k8sCentralDir = "kubernetes/central-prober"

// k8sScrapeConfig is the Prometheus Operator's ScrapeConfig, as far as the
// central prober uses it.
type k8sScrapeConfig struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		JobName             string `json:"jobName"`
		MetricsPath         string `json:"metricsPath"`
		ScrapeInterval      string `json:"scrapeInterval"`
		ScrapeTimeout       string `json:"scrapeTimeout"`
		KubernetesSDConfigs []struct {
			Role string `json:"role"`
		} `json:"kubernetesSDConfigs"`
		Relabelings []k8sRelabel `json:"relabelings"`
	} `json:"spec"`
}

type k8sCentral struct {
	kustomization  *k8sKustomization
	deployment     *appsv1.Deployment
	service        *corev1.Service
	configMap      *corev1.ConfigMap
	serviceMonitor *k8sServiceMonitor
	scrapeConfig   *k8sScrapeConfig
	files          []string
}

func k8sCentralLoad(t *testing.T) *k8sCentral {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(k8sCentralDir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sCentralDir, err)
	}
	m := &k8sCentral{}
	for _, path := range paths {
		file := filepath.Base(path)
		m.files = append(m.files, file)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var tm metav1.TypeMeta
		if err := sigsyaml.Unmarshal(b, &tm); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var dst any
		switch gvk := tm.APIVersion + "/" + tm.Kind; gvk {
		case "kustomize.config.k8s.io/v1beta1/Kustomization":
			m.kustomization = &k8sKustomization{}
			dst = m.kustomization
		case "apps/v1/Deployment":
			m.deployment = &appsv1.Deployment{}
			dst = m.deployment
		case "v1/Service":
			m.service = &corev1.Service{}
			dst = m.service
		case "v1/ConfigMap":
			m.configMap = &corev1.ConfigMap{}
			dst = m.configMap
		case "monitoring.coreos.com/v1/ServiceMonitor":
			m.serviceMonitor = &k8sServiceMonitor{}
			dst = m.serviceMonitor
		case "monitoring.coreos.com/v1alpha1/ScrapeConfig":
			m.scrapeConfig = &k8sScrapeConfig{}
			dst = m.scrapeConfig
		default:
			t.Fatalf("%s: unexpected %q: add it to the test", file, gvk)
		}
		k8sStrict(t, file, b, dst)
	}
	if m.kustomization == nil || m.deployment == nil || m.service == nil || m.configMap == nil || m.serviceMonitor == nil || m.scrapeConfig == nil {
		t.Fatalf("%s: want a Kustomization, Deployment, Service, ConfigMap, ServiceMonitor and ScrapeConfig; have %v", k8sCentralDir, m.files)
	}
	return m
}

func TestK8sCentralProberKustomizationListsEveryFile(t *testing.T) {
	m := k8sCentralLoad(t)
	var want []string
	for _, f := range m.files {
		if f != "kustomization.yaml" {
			want = append(want, f)
		}
	}
	got := slices.Sorted(slices.Values(m.kustomization.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %v, files %v", got, want)
	}
}

// probeJobs reads the mixin's probeJobs default.
func k8sMixinProbeJobs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../mixin/config.libsonnet")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*probeJobs: \[([^\]]*)\]`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no probeJobs in mixin/config.libsonnet")
	}
	var jobs []string
	for _, j := range regexp.MustCompile(`'([^']+)'`).FindAllSubmatch(m[1], -1) {
		jobs = append(jobs, string(j[1]))
	}
	return jobs
}

func TestK8sCentralProberScrapeConfig(t *testing.T) {
	m := k8sCentralLoad(t)
	sc := m.scrapeConfig.Spec
	if !slices.Contains(k8sMixinProbeJobs(t), sc.JobName) {
		t.Errorf("ScrapeConfig job %q is not one of the mixin's probeJobs %v: the exporter alerts would treat every gateway as an exporter", sc.JobName, k8sMixinProbeJobs(t))
	}
	if sc.JobName == k8sMixinJob(t) {
		t.Errorf("ScrapeConfig job %q is the exporter job", sc.JobName)
	}
	if sc.MetricsPath != "/probe" {
		t.Errorf("metricsPath %q, want /probe", sc.MetricsPath)
	}
	iv, err1 := model.ParseDuration(sc.ScrapeInterval)
	to, err2 := model.ParseDuration(sc.ScrapeTimeout)
	if err1 != nil || err2 != nil || to > iv {
		t.Errorf("interval %q, timeout %q: want durations, timeout <= interval", sc.ScrapeInterval, sc.ScrapeTimeout)
	}
	if len(sc.KubernetesSDConfigs) != 1 || sc.KubernetesSDConfigs[0].Role != "Pod" {
		t.Errorf("want one Kubernetes SD config with role Pod, got %+v", sc.KubernetesSDConfigs)
	}
	// What each relabelling sets, in order.
	set := map[string]k8sRelabel{}
	for _, r := range sc.Relabelings {
		if r.Action == "" || r.Action == "replace" {
			set[r.TargetLabel] = r
		}
	}
	if r := set["__param_target"]; !slices.Equal(r.SourceLabels, []string{"__address__"}) {
		t.Errorf("__param_target from %v, want the discovered __address__", r.SourceLabels)
	}
	if r := set["instance"]; !slices.Equal(r.SourceLabels, []string{"__param_target"}) {
		t.Errorf("instance from %v, want __param_target", r.SourceLabels)
	}
	if r := set["gateway"]; len(r.SourceLabels) == 0 {
		t.Error("no gateway label from the pod: the mixin's alerts name the gateway")
	}
	mod := set["__param_module"]
	if mod.Replacement == nil {
		t.Fatal("no module parameter")
	}
	f, err := config.Parse([]byte(m.configMap.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("configmap config.yaml: %v", err)
	}
	ms, ok := f.Modules[*mod.Replacement]
	if !ok {
		t.Errorf("module %q is not in the prober's config (%v)", *mod.Replacement, f.Modules)
	}
	if len(ms.AllowedTargets) == 0 {
		t.Error("the module allows loopback only: no pod could be probed")
	}
	addr := set["__address__"]
	if addr.Replacement == nil {
		t.Fatal("__address__ is not rewritten to the prober")
	}
	host, port, _ := strings.Cut(strings.Fields(*addr.Replacement)[0], ":")
	if !strings.HasPrefix(host, m.service.Name+".") {
		t.Errorf("__address__ %q is not the Service %s", *addr.Replacement, m.service.Name)
	}
	if port != "9789" || len(m.service.Spec.Ports) != 1 || m.service.Spec.Ports[0].Port != 9789 {
		t.Errorf("__address__ port %q, Service ports %+v: want 9789", port, m.service.Spec.Ports)
	}
}

func TestK8sCentralProberDeployment(t *testing.T) {
	m := k8sCentralLoad(t)
	spec := m.deployment.Spec.Template.Spec
	ex := k8sContainer(t, spec.Containers, "exporter")
	bin := unitBuildExporter(t)
	flags := unitExporterFlags(t, bin)
	for _, a := range ex.Args {
		if !flags[unitFlagName(a)] {
			t.Errorf("exporter arg %q: no such flag", a)
		}
	}
	if !slices.Contains(ex.Args, "--collector.disable-defaults") {
		t.Error("the prober runs the local-state collectors: it has no local gateway")
	}
	cfgPath, ok := unitFlagValue(ex.Args, "config.file")
	if !ok {
		t.Fatal("no --config.file")
	}
	mount, ok := k8sMountAt(ex, filepath.Dir(cfgPath))
	if !ok || k8sVolume(t, &spec, mount.Name).ConfigMap == nil || k8sVolume(t, &spec, mount.Name).ConfigMap.Name != m.configMap.Name {
		t.Errorf("--config.file %s is not the ConfigMap %s", cfgPath, m.configMap.Name)
	}
	// The module's token file is the Secret, mounted.
	f, err := config.Parse([]byte(m.configMap.Data["config.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	doc := m.configMap.Data["config.yaml"]
	for name, mod := range f.Modules {
		if mod.TokenFile == "" {
			continue
		}
		tm, ok := k8sMountAt(ex, mod.TokenFile)
		if !ok || k8sVolume(t, &spec, tm.Name).Secret == nil {
			t.Errorf("module %s: token_file %s is not a mounted Secret", name, mod.TokenFile)
		}
		tok := filepath.Join(dir, filepath.Base(mod.TokenFile))
		if err := os.WriteFile(tok, []byte("fleet-token\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		doc = strings.ReplaceAll(doc, mod.TokenFile, tok)
	}
	// The real binary accepts the config as it would start with it.
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := unitRun(t, "", nil, bin, "--config.file="+cfg, "--config.check"); err != nil {
		t.Errorf("--config.check: %v\n%s", err, out)
	}
	if !k8sRunAsNonRoot(&spec, ex) || ex.SecurityContext == nil || ex.SecurityContext.ReadOnlyRootFilesystem == nil || !*ex.SecurityContext.ReadOnlyRootFilesystem ||
		ex.SecurityContext.AllowPrivilegeEscalation == nil || *ex.SecurityContext.AllowPrivilegeEscalation {
		t.Error("the exporter container must run as non-root, read-only, without privilege escalation")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the prober needs no Kubernetes API token")
	}
	if lim := ex.Resources.Limits.Memory(); lim == nil || lim.IsZero() {
		t.Error("no memory limit")
	}

	pod := labels.Set(m.deployment.Spec.Template.Labels)
	if !labels.SelectorFromSet(m.service.Spec.Selector).Matches(pod) || len(m.service.Spec.Selector) == 0 {
		t.Errorf("Service selector %v does not select the prober pod %v", m.service.Spec.Selector, pod)
	}
	sp := m.service.Spec.Ports[0]
	targetOK := false
	for _, cp := range ex.Ports {
		if cp.ContainerPort == 9789 && (sp.TargetPort == intstr.FromString(cp.Name) || sp.TargetPort == intstr.FromInt32(cp.ContainerPort)) {
			targetOK = true
		}
	}
	if !targetOK {
		t.Errorf("Service port targets %s, not the exporter's 9789", sp.TargetPort.String())
	}
	sm := m.serviceMonitor
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(m.service.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not select the Service", sm.Spec.Selector)
	}
	job := ""
	for _, ep := range sm.Spec.Endpoints {
		for _, r := range ep.Relabelings {
			if r.TargetLabel == "job" && r.Replacement != nil {
				job = *r.Replacement
			}
		}
	}
	if job != k8sMixinJob(t) {
		t.Errorf("the prober's own metrics are job %q, the mixin's exporter alerts select %q", job, k8sMixinJob(t))
	}
}
