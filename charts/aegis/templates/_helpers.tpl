{{/*
Shared snippets. Every workload template (one per workload) builds its pods from these, so names, labels,
security contexts, probes and environment stay the same everywhere.
*/}}

{{/* ------------------------------------------------------------------------------------------ names */}}

{{- define "aegis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object: the release name (so `svc/<release>-risk`), or fullnameOverride. */}}
{{- define "aegis.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/* <fullname>-<component>; call with (dict "root" $ "component" "risk"). */}}
{{- define "aegis.componentName" -}}
{{- printf "%s-%s" (include "aegis.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aegis.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* ------------------------------------------------------------------------------------------ labels */}}

{{- define "aegis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aegis.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "aegis.labels" -}}
helm.sh/chart: {{ include "aegis.chart" .root }}
{{ include "aegis.selectorLabels" . }}
app.kubernetes.io/part-of: aegis
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* Labels of every object that is not a workload (ConfigMap, Secrets, RBAC, policies). */}}
{{- define "aegis.commonLabels" -}}
helm.sh/chart: {{ include "aegis.chart" . }}
app.kubernetes.io/name: {{ include "aegis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: aegis
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* ------------------------------------------------------------------------------------------ images */}}

{{/*
An image reference from {repository, tag, digest}: repository:tag@sha256:… when a digest is set (with or without
its "sha256:" prefix, as tools hand it over), else repository:tag.
*/}}
{{- define "aegis.imageRef" -}}
{{- $tag := .image.tag | default .default -}}
{{- if .image.digest -}}
{{- printf "%s:%s@sha256:%s" .image.repository $tag (trimPrefix "sha256:" .image.digest) -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end }}

{{- define "aegis.image" -}}
{{- include "aegis.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion) }}
{{- end }}

{{/*
checkov suppressions, as the annotations checkov reads on Kubernetes objects (checkov.io/skipN: ID=reason).
Each states why the check does not fit here. Call with (dict "root" $ "skips" (list "env-secrets" "uid")
"appImage" true). Two are conditional on the values: the image-digest check is skipped only while the AEGIS
image has no digest (the chart cannot know the digest of an image built after it; skaffold passes image.digest,
releases should too), and the pull-policy check only while image.pullPolicy is not Always (development).
*/}}
{{- define "aegis.checkovSkips" -}}
{{- $reasons := dict
  "env-secrets" "CKV_K8S_35=the AEGIS runtime reads its credentials from environment variables only (services/aegis/config.py)"
  "uid" "CKV_K8S_40=AEGIS runs as uid 1000 by design (infra/Dockerfile); runAsNonRoot, no capabilities and a read-only root isolate it"
  "postgres-uid" "CKV_K8S_40=uid 999 is the postgres user that owns the files of the official image"
  "redis-uid" "CKV_K8S_40=uid 999 is the redis user that owns the files of the official image"
  "api-token" "CKV_K8S_38=the orchestrator manages shards through the Kubernetes API (Role: pods read, feed-brain statefulsets/scale)"
  "test-liveness" "CKV_K8S_8=a one-shot helm test pod that exits with its verdict; nothing to keep alive"
  "test-readiness" "CKV_K8S_9=a one-shot helm test pod that exits with its verdict; it serves no traffic"
  "digest" "CKV_K8S_43=the AEGIS image is built after the chart; skaffold and releases pass image.digest"
  "pull-policy" "CKV_K8S_15=image.pullPolicy is not Always only in development (values-dev.yaml), where skaffold loads the image into a local cluster without a registry"
-}}
{{- $skips := .skips -}}
{{- if and .appImage (not .root.Values.image.digest) }}{{ $skips = append $skips "digest" }}{{ end -}}
{{- if and .appImage (ne .root.Values.image.pullPolicy "Always") }}{{ $skips = append $skips "pull-policy" }}{{ end -}}
{{- range $i, $s := $skips }}
checkov.io/skip{{ add1 $i }}: {{ get $reasons $s | required (printf "unknown checkov skip %s" $s) | quote }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------------------------------ security */}}

{{- define "aegis.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "aegis.securityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* ------------------------------------------------------------------------------------------ probes */}}

{{/*
Native gRPC probes on grpc.health.v1.Health. Readiness asks for the server's overall status (service ""), which
the runtime keeps NOT_SERVING while PostgreSQL (at the expected schema version) or Redis does not answer: the
pod leaves its Service's endpoints but keeps running. Startup and liveness ask for probes.livenessService
("liveness", aegis.server.LIVENESS_SERVICE), which the runtime reports SERVING for as long as the process runs,
whatever its dependencies do: a database outage must never restart every pod. Call with (dict "root" $ "port" N).

With tls.enabled the gRPC port speaks TLS only, which the kubelet's gRPC probe cannot (it has no TLS options):
the probes then ask the same questions over plain HTTP on the metrics port (gRPC port + metrics.portOffset),
/healthz for startup and liveness (the process runs) and /readyz for readiness (the overall status is SERVING).
*/}}
{{- define "aegis.grpcProbes" -}}
{{- $p := .root.Values.probes -}}
{{- if .root.Values.tls.enabled }}
{{- $metricsPort := add .port .root.Values.metrics.portOffset }}
startupProbe:
  httpGet:
    port: {{ $metricsPort }}
    path: /healthz
  periodSeconds: {{ $p.startup.periodSeconds }}
  timeoutSeconds: {{ $p.startup.timeoutSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
livenessProbe:
  httpGet:
    port: {{ $metricsPort }}
    path: /healthz
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    port: {{ $metricsPort }}
    path: /readyz
  periodSeconds: {{ $p.readiness.periodSeconds }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
{{- else }}
startupProbe:
  grpc:
    port: {{ .port }}
    service: {{ $p.livenessService | quote }}
  periodSeconds: {{ $p.startup.periodSeconds }}
  timeoutSeconds: {{ $p.startup.timeoutSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
livenessProbe:
  grpc:
    port: {{ .port }}
    service: {{ $p.livenessService | quote }}
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
readinessProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: {{ $p.readiness.periodSeconds }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
{{- end }}
{{- end }}

{{/*
Pod annotations for annotation-based Prometheus scrape configs (prometheus.io/port names one port per pod: the
feed-brain pod's brain metrics are found by the container port name instead, see docs/observability.md).
Call with (dict "root" $ "port" N).
*/}}
{{- define "aegis.metricsAnnotations" -}}
{{- if and .root.Values.metrics.enabled .root.Values.metrics.annotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------------------------------ environment */}}

{{- define "aegis.postgresSecretName" -}}
{{- .Values.postgresql.auth.existingSecret | default (include "aegis.componentName" (dict "root" . "component" "postgresql")) }}
{{- end }}

{{- define "aegis.redisSecretName" -}}
{{- .Values.redis.auth.existingSecret | default (include "aegis.componentName" (dict "root" . "component" "redis")) }}
{{- end }}

{{- define "aegis.databaseUrlSecretName" -}}
{{- .Values.externalDatabase.existingSecret | default (include "aegis.componentName" (dict "root" . "component" "database-url")) }}
{{- end }}

{{- define "aegis.redisUrlSecretName" -}}
{{- .Values.externalRedis.existingSecret | default (include "aegis.componentName" (dict "root" . "component" "redis-url")) }}
{{- end }}

{{- define "aegis.binanceSecretName" -}}
{{- .Values.binance.existingSecret | default (include "aegis.componentName" (dict "root" . "component" "binance")) }}
{{- end }}

{{/* True when the release carries Binance keys (values or an existing Secret). */}}
{{- define "aegis.hasBinanceKeys" -}}
{{- if or .Values.binance.existingSecret (and .Values.binance.apiKey .Values.binance.apiSecret) }}true{{ end }}
{{- end }}

{{/*
The environment of an AEGIS container besides the ConfigMap: database credentials from Secrets, and the Binance
keys in live mode only. Call with (dict "root" $ "postgres" true|false); the feed needs no PostgreSQL.
*/}}
{{- define "aegis.secretEnv" -}}
{{- $v := .root.Values -}}
{{- if .postgres }}
{{- if $v.postgresql.enabled }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "aegis.postgresSecretName" .root }}
      key: {{ $v.postgresql.auth.existingSecretPasswordKey }}
{{- else }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "aegis.databaseUrlSecretName" .root }}
      key: {{ $v.externalDatabase.existingSecretKey }}
{{- end }}
{{- end }}
{{- if $v.redis.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "aegis.redisSecretName" .root }}
      key: {{ $v.redis.auth.existingSecretPasswordKey }}
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:%d/0" (include "aegis.componentName" (dict "root" .root "component" "redis")) (int $v.redis.port) | quote }}
{{- else }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "aegis.redisUrlSecretName" .root }}
      key: {{ $v.externalRedis.existingSecretKey }}
{{- end }}
{{- if eq $v.mode "live" }}
- name: BINANCE_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "aegis.binanceSecretName" .root }}
      key: {{ $v.binance.apiKeyKey }}
- name: BINANCE_API_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "aegis.binanceSecretName" .root }}
      key: {{ $v.binance.apiSecretKey }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------------------------------ TLS */}}

{{/*
Optional TLS on every gRPC port (tls.enabled; docs/security.md, "TLS between services"). The Secret
tls.secretName (tls.crt, tls.key, ca.crt: what cert-manager writes) is mounted read-only at /etc/aegis/tls in
every AEGIS container and AEGIS_TLS_* point at it: each server then serves TLS only, each client channel
(service to service, `aegis status` in the helm test) trusts ca.crt, and with tls.clientAuth presents the same
certificate (mutual TLS). Call each with the root context.
*/}}
{{- define "aegis.tlsDir" -}}/etc/aegis/tls{{- end }}

{{- define "aegis.tlsEnv" -}}
{{- $t := .Values.tls -}}
{{- if $t.enabled }}
- name: AEGIS_TLS_CERT
  value: {{ printf "%s/%s" (include "aegis.tlsDir" .) $t.certKey | quote }}
- name: AEGIS_TLS_KEY
  value: {{ printf "%s/%s" (include "aegis.tlsDir" .) $t.keyKey | quote }}
- name: AEGIS_TLS_CA
  value: {{ printf "%s/%s" (include "aegis.tlsDir" .) $t.caKey | quote }}
- name: AEGIS_TLS_CLIENT_AUTH
  value: {{ $t.clientAuth | quote }}
{{- with $t.serverName }}
- name: AEGIS_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- define "aegis.tlsVolumeMounts" -}}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: {{ include "aegis.tlsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Group-readable (0440) for the pod's fsGroup, the AEGIS uid's group; nobody else reads the key. */}}
{{- define "aegis.tlsVolumes" -}}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName }}
    defaultMode: 0440
    items:
      - key: {{ .Values.tls.certKey }}
        path: {{ .Values.tls.certKey }}
      - key: {{ .Values.tls.keyKey }}
        path: {{ .Values.tls.keyKey }}
      - key: {{ .Values.tls.caKey }}
        path: {{ .Values.tls.caKey }}
{{- end }}
{{- end }}

{{/* Writable places under a read-only root: /tmp (AEGIS_HOME) and the numba cache. */}}
{{- define "aegis.scratchVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: numba-cache
  mountPath: {{ .Values.numbaCacheDir }}
{{- end }}

{{- define "aegis.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratch.tmpSizeLimit }}
- name: numba-cache
  emptyDir:
    sizeLimit: {{ .Values.scratch.numbaCacheSizeLimit }}
{{- end }}

{{/* ------------------------------------------------------------------------------------------ services */}}

{{/*
The gRPC services that run as a Deployment with a ClusterIP Service (risk, virtual-account, trainer,
orchestrator). Each has its own template file that calls this with its settings:
(dict "root" $ "component" "risk" "module" "risk" "port" 50053 "values" .Values.risk "serviceAccount" "..."
      "automountToken" false "strategy" "RollingUpdate")
*/}}
{{- define "aegis.grpcServiceWorkload" -}}
{{- $root := .root -}}
{{- $name := include "aegis.componentName" (dict "root" $root "component" .component) -}}
{{- $ctx := dict "root" $root "component" .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "aegis.labels" $ctx | nindent 4 }}
  annotations:
    {{- $skips := list "env-secrets" "uid" }}
    {{- if .automountToken }}{{ $skips = append $skips "api-token" }}{{ end }}
    {{- include "aegis.checkovSkips" (dict "root" $root "skips" $skips "appImage" true) | trim | nindent 4 }}
spec:
  replicas: {{ .values.replicas }}
  revisionHistoryLimit: 5
  strategy:
    {{- if eq .strategy "Recreate" }}
    type: Recreate
    {{- else }}
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
    {{- end }}
  selector:
    matchLabels:
      {{- include "aegis.selectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "aegis.labels" $ctx | nindent 8 }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        {{- include "aegis.metricsAnnotations" (dict "root" $root "port" (add .port $root.Values.metrics.portOffset)) | nindent 8 }}
    spec:
      serviceAccountName: {{ .serviceAccount }}
      automountServiceAccountToken: {{ .automountToken }}
      {{- with .values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
      securityContext:
        {{- include "aegis.podSecurityContext" (dict "uid" $root.Values.uid) | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "aegis.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: ["python", "-m", "aegis.{{ .module }}"]
          ports:
            - name: grpc
              containerPort: {{ .port }}
              protocol: TCP
            {{- if $root.Values.metrics.enabled }}
            - name: metrics
              containerPort: {{ add .port $root.Values.metrics.portOffset }}
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "aegis.componentName" (dict "root" $root "component" "config") }}
          env:
            {{- include "aegis.secretEnv" (dict "root" $root "postgres" true) | trim | nindent 12 }}
            {{- include "aegis.tlsEnv" $root | nindent 12 }}
          {{- include "aegis.grpcProbes" (dict "root" $root "port" .port) | nindent 10 }}
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          securityContext:
            {{- include "aegis.securityContext" (dict "uid" $root.Values.uid) | nindent 12 }}
          volumeMounts:
            {{- include "aegis.scratchVolumeMounts" $root | nindent 12 }}
            {{- include "aegis.tlsVolumeMounts" $root | nindent 12 }}
      volumes:
        {{- include "aegis.scratchVolumes" $root | nindent 8 }}
        {{- include "aegis.tlsVolumes" $root | nindent 8 }}
      {{- with .values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "aegis.labels" $ctx | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "aegis.selectorLabels" $ctx | nindent 4 }}
  ports:
    - name: grpc
      port: {{ .port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    {{- if $root.Values.metrics.enabled }}
    - name: metrics
      port: {{ add .port $root.Values.metrics.portOffset }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
    {{- end }}
{{- if .values.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "aegis.labels" $ctx | nindent 4 }}
spec:
  maxUnavailable: {{ .values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "aegis.selectorLabels" $ctx | nindent 6 }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------------------------------ checks */}}

{{/* Refuse to render settings that would trade real money by accident or start pods that cannot work. */}}
{{- define "aegis.validate" -}}
{{- $v := .Values -}}
{{- if eq $v.mode "live" }}
{{- if ne $v.liveConfirm "I_UNDERSTAND_THIS_TRADES_REAL_MONEY" }}
{{- fail "mode: live trades real money on Binance: set liveConfirm=I_UNDERSTAND_THIS_TRADES_REAL_MONEY to confirm (refusing to render)" }}
{{- end }}
{{- if not (include "aegis.hasBinanceKeys" .) }}
{{- fail "mode: live needs Binance keys: binance.existingSecret (recommended) or binance.apiKey and binance.apiSecret" }}
{{- end }}
{{- end }}
{{- if and (ne $v.mode "live") $v.liveConfirm }}
{{- fail "liveConfirm is set but mode is not live: remove liveConfirm, or set mode: live on purpose" }}
{{- end }}
{{- if and (not $v.postgresql.enabled) (not $v.externalDatabase.url) (not $v.externalDatabase.existingSecret) }}
{{- fail "postgresql.enabled=false needs externalDatabase.url or externalDatabase.existingSecret" }}
{{- end }}
{{- if and (not $v.redis.enabled) (not $v.externalRedis.url) (not $v.externalRedis.existingSecret) }}
{{- fail "redis.enabled=false needs externalRedis.url or externalRedis.existingSecret" }}
{{- end }}
{{- if and $v.migrations.hook.enabled (or $v.postgresql.enabled (not $v.externalDatabase.existingSecret)) }}
{{- fail "migrations.hook.enabled needs an external database given by externalDatabase.existingSecret: the hook runs before the chart's own PostgreSQL and Secrets exist" }}
{{- end }}
{{- if and $v.tls.enabled (not $v.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName: a Secret with tls.crt, tls.key and ca.crt (docs/security.md)" }}
{{- end }}
{{- if and $v.tls.enabled (not $v.metrics.enabled) }}
{{- fail "tls.enabled needs metrics.enabled: the kubelet cannot probe a TLS gRPC port, so the probes use the metrics port's /healthz and /readyz" }}
{{- end }}
{{- if and $v.tls.clientAuth (not $v.tls.enabled) }}
{{- fail "tls.clientAuth needs tls.enabled" }}
{{- end }}
{{- if le (int $v.terminationGracePeriodSeconds) (int (ceil $v.config.shutdownGraceSeconds)) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed config.shutdownGraceSeconds (%v), or Kubernetes kills pods mid-drain" $v.terminationGracePeriodSeconds $v.config.shutdownGraceSeconds) }}
{{- end }}
{{- $symbols := len $v.config.symbols | default (int $v.config.symbolCount) }}
{{- $covered := mul (int $v.feedBrain.shards) (int $v.config.shardSize) }}
{{- if lt (int $covered) (int $symbols) }}
{{- fail (printf "feedBrain.shards=%v x config.shardSize=%v follows %v symbols, fewer than the %v configured: raise feedBrain.shards" $v.feedBrain.shards $v.config.shardSize $covered $symbols) }}
{{- end }}
{{- end }}

{{- define "aegis.feedBrainPriorityClassName" -}}
{{- .Values.feedBrain.priorityClass.name | default (printf "%s-%s-feed-brain" .Release.Namespace (include "aegis.fullname" .)) | trunc 63 | trimSuffix "-" }}
{{- end }}
