{{/* Chart name. */}}
{{- define "spindle.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every object name: the release name, with the chart name unless it already contains it. */}}
{{- define "spindle.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "spindle.agent.name" -}}{{ include "spindle.fullname" . }}-agent{{- end -}}
{{- define "spindle.controller.name" -}}{{ include "spindle.fullname" . }}-controller{{- end -}}
{{- define "spindle.config.name" -}}{{ include "spindle.fullname" . }}-config{{- end -}}
{{- define "spindle.webhook.secret" -}}{{ include "spindle.fullname" . }}-webhook-tls{{- end -}}
{{- define "spindle.multus.name" -}}{{ include "spindle.fullname" . }}-multus{{- end -}}

{{/* Labels on every object. */}}
{{- define "spindle.labels" -}}
app.kubernetes.io/name: {{ include "spindle.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component: include with (list $ "agent"). */}}
{{- define "spindle.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "spindle.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Image reference: include with (list $ registry repository tag digest). */}}
{{- define "spindle.imageRef" -}}
{{- $ := index . 0 -}}
{{- $registry := index . 1 -}}
{{- if $.Values.global.imageRegistryOverride -}}{{- $registry = $.Values.global.imageRegistryOverride -}}{{- end -}}
{{- $ref := index . 2 -}}
{{- if $registry -}}{{- $ref = printf "%s/%s" (trimSuffix "/" $registry) $ref -}}{{- end -}}
{{- if index . 4 -}}
{{- printf "%s@%s" $ref (index . 4) -}}
{{- else -}}
{{- printf "%s:%s" $ref (index . 3) -}}
{{- end -}}
{{- end -}}

{{- define "spindle.image" -}}
{{- include "spindle.imageRef" (list . .Values.image.registry .Values.image.repository (default .Chart.AppVersion .Values.image.tag) .Values.image.digest) -}}
{{- end -}}

{{- define "spindle.multus.image" -}}
{{- $tag := .Values.multus.image.tag -}}
{{- if eq .Values.multus.flavor "thick" -}}{{- $tag = printf "%s-thick" $tag -}}{{- end -}}
{{- include "spindle.imageRef" (list . .Values.multus.image.registry .Values.multus.image.repository $tag "") -}}
{{- end -}}

{{- define "spindle.pullSecrets" -}}
imagePullSecrets:
{{- range .Values.image.pullSecrets }}
  - name: {{ . }}
{{- end }}
{{- end -}}

{{/* Where the controller reads its webhook serving certificate. */}}
{{- define "spindle.webhook.certDir" -}}/etc/spindle/webhook-certs{{- end -}}

{{/*
Command-line settings of each binary, flag -> value. The ConfigMap carries them
as SPINDLE_AGENT_* / SPINDLE_CONTROLLER_* keys and the containers pass them as
--flag=$(KEY), so the ConfigMap is what the binaries run with.
*/}}
{{- /* The cluster default subnets, the same for the agent and the controller. */ -}}
{{- define "spindle.defaultSubnetSettings" }}
{{- $d := .Values.ipam.clusterDefaultSubnet }}
cluster-default-subnet-v4: {{ ternary $d.ipv4 "" $d.enabled | quote }}
cluster-default-subnet-v6: {{ ternary $d.ipv6 "" $d.enabled | quote }}
{{- end -}}

{{- define "spindle.agent.settings" -}}
socket: {{ printf "%s/agent.sock" (trimSuffix "/" .Values.agent.socketDir) | quote }}
health-addr: {{ printf ":%v" .Values.agent.healthPort | quote }}
metrics-addr: {{ ternary (printf "%s:%v" .Values.agent.metrics.bindAddress .Values.agent.metrics.port) "" .Values.agent.metrics.enabled | quote }}
metrics-secure: {{ .Values.metrics.secure | quote }}
enable-ipv4: {{ .Values.ipam.enableIPv4 | quote }}
enable-ipv6: {{ .Values.ipam.enableIPv6 | quote }}
enable-statefulset: {{ .Values.ipam.enableStatefulSet | quote }}
cluster-default-network: {{ .Values.ipam.clusterDefaultNetwork | quote }}
{{- include "spindle.defaultSubnetSettings" . }}
system-namespace: {{ .Release.Namespace | quote }}
endpoint-writes: {{ .Values.ipam.endpointWrites | quote }}
endpoint-workers: {{ .Values.ipam.endpointWorkers | quote }}
gc-interval: {{ .Values.ipam.gc.nodeInterval | quote }}
conflict-quarantine: {{ .Values.ipam.conflictQuarantine | quote }}
kube-api-qps: {{ .Values.agent.kubeAPIQPS | quote }}
kube-api-burst: {{ .Values.agent.kubeAPIBurst | quote }}
v: {{ .Values.agent.logLevel | quote }}
log-format: {{ .Values.agent.logFormat | quote }}
{{- end -}}

{{- define "spindle.controller.settings" -}}
kube-api-qps: {{ .Values.controller.kubeAPIQPS | quote }}
kube-api-burst: {{ .Values.controller.kubeAPIBurst | quote }}
metrics-bind-address: {{ printf "%s:%v" (ternary "" "127.0.0.1" .Values.metrics.secure) .Values.controller.metricsPort | quote }}
metrics-secure: {{ .Values.metrics.secure | quote }}
health-probe-bind-address: {{ printf ":%v" .Values.controller.healthPort | quote }}
leader-elect: {{ .Values.controller.leaderElection.enabled | quote }}
leader-election-namespace: {{ .Release.Namespace | quote }}
leader-election-id: {{ include "spindle.controller.name" . | quote }}
leader-election-lease-duration: {{ .Values.controller.leaderElection.leaseDuration | quote }}
leader-election-renew-deadline: {{ .Values.controller.leaderElection.renewDeadline | quote }}
leader-election-retry-period: {{ .Values.controller.leaderElection.retryPeriod | quote }}
graceful-shutdown-timeout: {{ .Values.controller.gracefulShutdownTimeout | quote }}
enable-webhooks: {{ .Values.webhook.enabled | quote }}
webhook-port: {{ .Values.controller.webhookPort | quote }}
webhook-cert-dir: {{ include "spindle.webhook.certDir" . | quote }}
webhook-cert-secret: {{ ternary (printf "%s/%s" .Release.Namespace (include "spindle.webhook.secret" .)) "" (eq .Values.webhook.certs.source "controller") | quote }}
webhook-service-name: {{ include "spindle.controller.name" . | quote }}
webhook-service-namespace: {{ .Release.Namespace | quote }}
webhook-service-port: "443"
webhook-patch-cabundle: {{ .Values.webhook.patchCABundle | quote }}
webhook-mutating-configuration: {{ include "spindle.controller.name" . | quote }}
webhook-validating-configuration: {{ include "spindle.controller.name" . | quote }}
webhook-failure-policy: {{ .Values.webhook.failurePolicy | quote }}
webhook-timeout-seconds: {{ .Values.webhook.timeoutSeconds | quote }}
webhook-configuration-resync: {{ .Values.webhook.configurationResync | quote }}
enable-statefulset: {{ .Values.ipam.enableStatefulSet | quote }}
subnet-default-spare-ips: {{ .Values.ipam.subnetDefaultSpareIPs | quote }}
{{- include "spindle.defaultSubnetSettings" . }}
gc-enabled: {{ .Values.ipam.gc.enabled | quote }}
gc-interval: {{ .Values.ipam.gc.interval | quote }}
gc-terminating-pod-delay: {{ .Values.ipam.gc.terminatingPodDelay | quote }}
gc-terminating-pod-on-ready-node: {{ .Values.ipam.gc.terminatingPodOnReadyNode | quote }}
gc-terminating-pod-on-not-ready-node: {{ .Values.ipam.gc.terminatingPodOnNotReadyNode | quote }}
pool-status-enabled: {{ .Values.controller.poolStatusEnabled | quote }}
multus-config-enabled: {{ .Values.controller.multusConfigEnabled | quote }}
inline-ranges-enabled: {{ .Values.controller.inlineRangesEnabled | quote }}
coordinator-enabled: {{ .Values.coordinator.statusEnabled | quote }}
coordinator-create-default: {{ not .Values.coordinator.createDefault | quote }}
coordinator-resync: {{ .Values.coordinator.resync | quote }}
system-namespace: {{ .Values.controller.clusterSystemNamespace | quote }}
max-concurrent-reconciles: {{ .Values.controller.maxConcurrentReconciles | quote }}
v: {{ .Values.controller.logLevel | quote }}
log-format: {{ .Values.controller.logFormat | quote }}
{{- end -}}

{{/* Environment key of a setting: include with (list "AGENT" "enable-ipv4"). */}}
{{- define "spindle.settingKey" -}}
SPINDLE_{{ index . 0 }}_{{ index . 1 | upper | replace "-" "_" }}
{{- end -}}

{{/* Container args from a settings map: include with (list "AGENT" $settings). */}}
{{- define "spindle.settingArgs" -}}
{{- $component := index . 0 -}}
{{- range $flag, $_ := index . 1 }}
- --{{ $flag }}=$({{ include "spindle.settingKey" (list $component $flag) }})
{{- end -}}
{{- end -}}

{{/* Checks of values the templates cannot render meaningfully. */}}
{{- define "spindle.validate" -}}
{{- if not (or .Values.ipam.enableIPv4 .Values.ipam.enableIPv6) -}}
{{- fail "ipam.enableIPv4 and ipam.enableIPv6 are both false: enable at least one family" -}}
{{- end -}}
{{- if not (has .Values.webhook.certs.source (list "helm" "certManager" "controller")) -}}
{{- fail (printf "webhook.certs.source %q is not one of helm, certManager, controller" .Values.webhook.certs.source) -}}
{{- end -}}
{{- if not (has .Values.webhook.failurePolicy (list "Fail" "Ignore")) -}}
{{- fail (printf "webhook.failurePolicy %q is not Fail or Ignore" .Values.webhook.failurePolicy) -}}
{{- end -}}
{{- if not (has .Values.ipam.endpointWrites (list "async" "sync")) -}}
{{- fail (printf "ipam.endpointWrites %q is not async or sync" .Values.ipam.endpointWrites) -}}
{{- end -}}
{{- if not (has .Values.multus.flavor (list "thick" "thin")) -}}
{{- fail (printf "multus.flavor %q is not thick or thin" .Values.multus.flavor) -}}
{{- end -}}
{{- if and .Values.clusterDefaultPool.installIPv4IPPool (not (and .Values.clusterDefaultPool.ipv4Subnet .Values.clusterDefaultPool.ipv4IPRanges)) -}}
{{- fail "clusterDefaultPool.installIPv4IPPool needs clusterDefaultPool.ipv4Subnet and clusterDefaultPool.ipv4IPRanges" -}}
{{- end -}}
{{- if and .Values.clusterDefaultPool.installIPv6IPPool (not (and .Values.clusterDefaultPool.ipv6Subnet .Values.clusterDefaultPool.ipv6IPRanges)) -}}
{{- fail "clusterDefaultPool.installIPv6IPPool needs clusterDefaultPool.ipv6Subnet and clusterDefaultPool.ipv6IPRanges" -}}
{{- end -}}
{{- if and (not .Values.metrics.secure) .Values.agent.metrics.enabled (not (hasPrefix "127." .Values.agent.metrics.bindAddress)) -}}
{{- fail (printf "agent.metrics.bindAddress %q with metrics.secure=false would serve metrics over plain HTTP to the network: keep 127.0.0.1 or set metrics.secure=true" .Values.agent.metrics.bindAddress) -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.secure) -}}
{{- fail "serviceMonitor.enabled needs metrics.secure=true: plain-HTTP metrics are served on 127.0.0.1 only" -}}
{{- end -}}
{{- with .Values.ipam.clusterDefaultSubnet -}}
{{- if and .enabled (not (or .ipv4 .ipv6)) -}}
{{- fail "ipam.clusterDefaultSubnet.enabled needs ipam.clusterDefaultSubnet.ipv4 or ipam.clusterDefaultSubnet.ipv6: name the SpiderSubnet(s) to carve from" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "spindle.tests.name" -}}{{ include "spindle.fullname" . }}-selftest{{- end -}}

{{/* Image of the test pods: tests.image.*, or the Spindle image when its repository is empty. */}}
{{- define "spindle.tests.image" -}}
{{- if .Values.tests.image.repository -}}
{{- include "spindle.imageRef" (list . .Values.tests.image.registry .Values.tests.image.repository (default .Chart.AppVersion .Values.tests.image.tag) "") -}}
{{- else -}}
{{- include "spindle.image" . -}}
{{- end -}}
{{- end -}}

{{/* The SpiderIPPool of the address check: tests.pool.name, or the created pool's default name. */}}
{{- define "spindle.tests.pool" -}}
{{- if .Values.tests.pool.name -}}
{{- .Values.tests.pool.name -}}
{{- else if .Values.tests.pool.subnet -}}
{{- include "spindle.tests.name" . -}}
{{- end -}}
{{- end -}}

{{/* Annotations of every test hook object: created by `helm test`, deleted once it passes. */}}
{{- define "spindle.tests.hook" -}}
helm.sh/hook: test
helm.sh/hook-weight: {{ index . 1 | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end -}}

{{/* Annotations of the import hook objects (templates/migration.yaml), of the given weight: created before the release's other objects on install and upgrade, deleted once the import succeeded. */}}
{{- define "spindle.migration.hook" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ . | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end -}}

{{/*
The files the chart puts in the node's CNI bin directory (as the agent sees
it, /host/cni-bin): the agent's plugins, and Multus' when the chart installs
Multus. The agent removes them when its DaemonSet is deleted.
*/}}
{{- define "spindle.agent.installedFiles" -}}
{{- $files := list "/host/cni-bin/spiderpool" "/host/cni-bin/coordinator" -}}
{{- if .Values.multus.install -}}
{{- $files = append $files (ternary "/host/cni-bin/multus" "/host/cni-bin/multus-shim" (eq .Values.multus.flavor "thin")) -}}
{{- $files = append $files "/host/cni-bin/passthru" -}}
{{- end -}}
{{- join "," $files -}}
{{- end -}}
