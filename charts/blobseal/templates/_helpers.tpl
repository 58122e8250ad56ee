{{/*
Names, labels and the pieces the gateway, the sidecar and the sweeper share. Every template here takes the
chart's root context: `.` inside this chart, `.Subcharts.blobseal` from a parent chart.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "blobseal.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The name of every object: fullnameOverride, else <release>-blobseal (just <release> if it already says
blobseal), at most 63 characters. */}}
{{- define "blobseal.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "blobseal.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "blobseal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "blobseal.labels" -}}
helm.sh/chart: {{ include "blobseal.chart" . }}
app.kubernetes.io/name: {{ include "blobseal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels that select the gateway's pods: the component keeps the sweeper's pods out of the gateway's
Service, PodDisruptionBudget and NetworkPolicy. */}}
{{- define "blobseal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "blobseal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{/* Labels of the gateway's own objects (Deployment, Service, PDB, NetworkPolicy, ServiceMonitor). */}}
{{- define "blobseal.gatewayLabels" -}}
{{ include "blobseal.labels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{/* Labels that select the application's pods in sidecar mode. */}}
{{- define "blobseal.appSelectorLabels" -}}
app.kubernetes.io/name: {{ .Values.sidecar.app.name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of the application's objects in sidecar mode. */}}
{{- define "blobseal.appLabels" -}}
helm.sh/chart: {{ include "blobseal.chart" . }}
{{ include "blobseal.appSelectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: app
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "blobseal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "blobseal.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "blobseal.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "blobseal.fullname" .) -}}
{{- end -}}

{{- define "blobseal.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-data" (include "blobseal.fullname" .)) -}}
{{- end -}}

{{- define "blobseal.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Whether blobseal binds loopback only (the sidecar modes). */}}
{{- define "blobseal.loopback" -}}
{{- if ne .Values.mode "gateway" }}true{{ end -}}
{{- end -}}

{{/* The chart's default config (values.yaml shows it): fs backend and local keyring on the data volume. */}}
{{- define "blobseal.defaultConfig" -}}
key_provider:
  kind: local
  keyring: /var/lib/blobseal/keyring/keyring.json
  master_key_file: /var/lib/blobseal/master/master.key
backends:
  - name: data
    kind: fs
    path: /var/lib/blobseal/objects
tenants:
  - name: default
    default_backend: data
    access_keys:
      - id: BLOBSEALDEFAULT
        secret_file: /run/secrets/blobseal/default-secret-access-key
audit:
  signing_key_file: /var/lib/blobseal/master/audit-signing.key
{{- end -}}

{{/* The config as the user gave it (.Values.config, or the default when empty), as YAML. */}}
{{- define "blobseal.userConfig" -}}
{{- if .Values.config -}}
{{- toYaml .Values.config -}}
{{- else -}}
{{- include "blobseal.defaultConfig" . -}}
{{- end -}}
{{- end -}}

{{/* The config file: the user's config plus the fields the chart owns. */}}
{{- define "blobseal.configFile" -}}
{{- $host := "0.0.0.0" -}}
{{- if include "blobseal.loopback" . }}{{ $host = "127.0.0.1" }}{{ end -}}
{{- $cfg := include "blobseal.userConfig" . | fromYaml -}}
{{- $_ := set $cfg "listen" (printf "%s:%d" $host (.Values.ports.s3 | int)) -}}
{{- $_ := set $cfg "admin_listen" (printf "0.0.0.0:%d" (.Values.ports.admin | int)) -}}
{{- if .Values.azure.enabled -}}
{{- $_ := set $cfg "azure_listen" (printf "%s:%d" $host (.Values.ports.azure | int)) -}}
{{- end -}}
{{- $_ := set $cfg "log_format" .Values.logFormat -}}
{{- $_ := set $cfg "shutdown" (dict "drain_delay_seconds" (.Values.shutdown.drainDelaySeconds | int) "timeout_seconds" (.Values.shutdown.timeoutSeconds | int)) -}}
{{- if .Values.tls.enabled -}}
{{- $tls := dict "cert_file" "/run/secrets/blobseal-tls/tls.crt" "key_file" "/run/secrets/blobseal-tls/tls.key" -}}
{{- if .Values.tls.clientAuth -}}
{{- $_ := set $tls "client_ca_file" "/run/secrets/blobseal-tls/ca.crt" -}}
{{- end -}}
{{- $_ := set $cfg "tls" $tls -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Pod annotations that roll the pods when the config or the chart-made Secret changes. */}}
{{- define "blobseal.checksums" -}}
checksum/config: {{ include "blobseal.configFile" . | sha256sum }}
checksum/secret: {{ toJson .Values.secrets | sha256sum }}
{{- end -}}

{{/* Checks that stop a render with a clear message. Included once by every mode (configmap.yaml). */}}
{{- define "blobseal.validate" -}}
{{- $drain := .Values.shutdown.drainDelaySeconds | int -}}
{{- $timeout := .Values.shutdown.timeoutSeconds | int -}}
{{- if not (kindIs "invalid" .Values.terminationGracePeriodSeconds) -}}
{{- if lt (.Values.terminationGracePeriodSeconds | int) (add $drain $timeout 5 | int) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least shutdown.drainDelaySeconds + shutdown.timeoutSeconds + 5 = %d: the kubelet would kill blobseal during its drain" (.Values.terminationGracePeriodSeconds | int) (add $drain $timeout 5 | int)) -}}
{{- end -}}
{{- end -}}
{{- $local := false -}}
{{- $cfg := include "blobseal.userConfig" . | fromYaml -}}
{{- with $cfg.key_provider -}}
{{- if eq (toString .kind) "local" }}{{ $local = true }}{{ end -}}
{{- end -}}
{{- range $cfg.key_providers -}}
{{- if eq (toString .kind) "local" }}{{ $local = true }}{{ end -}}
{{- end -}}
{{- if and $local (gt (.Values.replicas | int) 1) (not .Values.keyring.sharedStorage) -}}
{{- fail (printf "replicas is %d but a key provider of kind local keeps its keyring in a file each pod must share: set keyring.sharedStorage: true with the keyring on a ReadWriteMany volume (persistence.accessModes or an RWX existingClaim), or use aws-kms or pkcs11" (.Values.replicas | int)) -}}
{{- end -}}
{{- if and $local .Values.sweeper.enabled (not .Values.keyring.sharedStorage) -}}
{{- fail "sweeper.enabled with a key provider of kind local: the sweeper's pods need the keyring too; set keyring.sharedStorage: true with the keyring on a ReadWriteMany volume, or use aws-kms or pkcs11" -}}
{{- end -}}
{{- if and .Values.keyring.sharedStorage .Values.persistence.enabled (not .Values.persistence.existingClaim) (not (has "ReadWriteMany" .Values.persistence.accessModes)) -}}
{{- fail "keyring.sharedStorage: true needs a volume every pod can mount: persistence.accessModes must include ReadWriteMany (or give an RWX persistence.existingClaim)" -}}
{{- end -}}
{{- if eq .Values.mode "sidecar" -}}
{{- if or (not .Values.sidecar.app.name) (not .Values.sidecar.app.image) -}}
{{- fail "mode: sidecar renders your application's Deployment: set sidecar.app.name and sidecar.app.image (or use mode: sidecar-template and include the sidecar in your own chart)" -}}
{{- end -}}
{{- if and .Values.azure.enabled (or (not .Values.sidecar.app.azureAccount.name) (not .Values.sidecar.app.azureAccount.keySecretKey)) -}}
{{- fail "mode: sidecar with azure.enabled: set sidecar.app.azureAccount.name and .keySecretKey so the app gets AZURE_STORAGE_CONNECTION_STRING" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) -}}
{{- fail "tls.enabled: set tls.secretName to a kubernetes.io/tls Secret (tls.crt, tls.key; ca.crt with tls.clientAuth)" -}}
{{- end -}}
{{- if and .Values.secrets.existingSecret (or .Values.secrets.data .Values.secrets.generate) -}}
{{- fail "secrets.existingSecret is set: secrets.data and secrets.generate must be empty (the chart makes no Secret then)" -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) -}}
{{- fail "podDisruptionBudget: give minAvailable or maxUnavailable, not both (set the other to null)" -}}
{{- end -}}
{{- end -}}

{{/* The grace period: the value given, else drain + timeout + 10. */}}
{{- define "blobseal.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add .Values.shutdown.drainDelaySeconds .Values.shutdown.timeoutSeconds 10 -}}
{{- else -}}
{{- .Values.terminationGracePeriodSeconds | int -}}
{{- end -}}
{{- end -}}

{{/* Pod-level security context of every pod blobseal runs in. */}}
{{- define "blobseal.podSecurityContext" -}}
runAsNonRoot: true
{{- with .Values.podSecurityContext.fsGroup }}
fsGroup: {{ . }}
{{- end }}
{{- with .Values.podSecurityContext.fsGroupChangePolicy }}
fsGroupChangePolicy: {{ . }}
{{- end }}
{{- with .Values.podSecurityContext.supplementalGroups }}
supplementalGroups: {{ toJson . }}
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* blobseal's container security context (fixed: not a value). */}}
{{- define "blobseal.securityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser | default 65532 }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup | default 65532 }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Volume mounts of a blobseal container. */}}
{{- define "blobseal.volumeMounts" -}}
- name: blobseal-config
  mountPath: /etc/blobseal
  readOnly: true
- name: blobseal-secrets
  mountPath: /run/secrets/blobseal
  readOnly: true
{{- if .Values.tls.enabled }}
- name: blobseal-tls
  mountPath: /run/secrets/blobseal-tls
  readOnly: true
{{- end }}
{{- if .Values.persistence.enabled }}
- name: blobseal-data
  mountPath: /var/lib/blobseal
{{- end }}
- name: blobseal-tmp
  mountPath: /tmp
{{- end -}}

{{/* Pod volumes for blobseal (the directories are mounted whole: blobseal watches them for reloads). */}}
{{- define "blobseal.volumes" -}}
- name: blobseal-config
  configMap:
    name: {{ include "blobseal.fullname" . }}
- name: blobseal-secrets
  secret:
    secretName: {{ include "blobseal.secretName" . }}
    defaultMode: 0440
{{- if .Values.tls.enabled }}
- name: blobseal-tls
  secret:
    secretName: {{ .Values.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- if .Values.persistence.enabled }}
- name: blobseal-data
  persistentVolumeClaim:
    claimName: {{ include "blobseal.claimName" . }}
{{- end }}
- name: blobseal-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{/* Environment of a blobseal container: Secret keys for *_env references, then extraEnv. */}}
{{- define "blobseal.env" -}}
{{- $secret := include "blobseal.secretName" . -}}
{{- range $name, $key := .Values.secrets.env }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* An HTTP probe on the admin port. Arguments: root context, path, probe values. */}}
{{- define "blobseal.probe" -}}
{{- $p := index . 2 -}}
httpGet:
  path: {{ index . 1 }}
  port: admin
  scheme: HTTP
periodSeconds: {{ $p.periodSeconds }}
failureThreshold: {{ $p.failureThreshold }}
timeoutSeconds: {{ $p.timeoutSeconds }}
{{- end -}}

{{/* The blobseal container (gateway) or native sidecar (with "sidecar" true). Argument: dict root, sidecar. */}}
{{- define "blobseal.container" -}}
{{- $root := .root -}}
{{- with $root -}}
- name: blobseal
  image: {{ include "blobseal.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if $.sidecar }}
  # A native sidecar: started before the app, kept running beside it, stopped after it.
  restartPolicy: Always
  {{- end }}
  args: ["serve", "--config", "/etc/blobseal/config.yaml"]
  ports:
    {{- if not $.sidecar }}
    - name: s3
      containerPort: {{ .Values.ports.s3 }}
      protocol: TCP
    {{- if .Values.azure.enabled }}
    - name: azure
      containerPort: {{ .Values.ports.azure }}
      protocol: TCP
    {{- end }}
    {{- else }}
    # The sidecar's S3 (and Azure) listeners bind 127.0.0.1: only the admin port is reachable from outside.
    {{- end }}
    - name: admin
      containerPort: {{ .Values.ports.admin }}
      protocol: TCP
  {{- with (include "blobseal.env" . | trim) }}
  env:
    {{- . | nindent 4 }}
  {{- end }}
  startupProbe:
    {{- include "blobseal.probe" (list . "/readyz" .Values.probes.startup) | nindent 4 }}
  livenessProbe:
    {{- include "blobseal.probe" (list . "/livez" .Values.probes.liveness) | nindent 4 }}
  readinessProbe:
    {{- include "blobseal.probe" (list . "/readyz" .Values.probes.readiness) | nindent 4 }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- include "blobseal.securityContext" . | nindent 4 }}
  volumeMounts:
    {{- include "blobseal.volumeMounts" . | nindent 4 }}
{{- end -}}
{{- end -}}

{{/*
For a parent chart: blobseal as a native sidecar, one item of the pod's initContainers.
  initContainers:
    {{- include "blobseal.sidecar" .Subcharts.blobseal | nindent 4 }}
The subchart must run with mode: sidecar-template (its ConfigMap then binds 127.0.0.1).
*/}}
{{- define "blobseal.sidecar" -}}
{{- include "blobseal.container" (dict "root" . "sidecar" true) -}}
{{- end -}}

{{/* For a parent chart: the pod volumes the sidecar mounts (items of the pod's volumes). */}}
{{- define "blobseal.sidecar.volumes" -}}
{{- include "blobseal.volumes" . -}}
{{- end -}}

{{/* For a parent chart: the pod annotations that roll the pods on a config or secret change. */}}
{{- define "blobseal.sidecar.annotations" -}}
{{- include "blobseal.checksums" . -}}
{{- end -}}

{{/* The application's environment pointing at the sidecar (items of the app container's env). */}}
{{- define "blobseal.sidecar.appEnv" -}}
{{- $scheme := .Values.tls.enabled | ternary "https" "http" -}}
{{- $secret := include "blobseal.secretName" . -}}
- name: AWS_ENDPOINT_URL
  value: {{ printf "%s://127.0.0.1:%d" $scheme (.Values.ports.s3 | int) | quote }}
{{- with .Values.sidecar.app.credentials }}
{{- if and .accessKeyId .secretKey }}
- name: AWS_ACCESS_KEY_ID
  value: {{ .accessKeyId | quote }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .secretKey }}
{{- end }}
{{- end }}
{{- if .Values.azure.enabled }}
{{- with .Values.sidecar.app.azureAccount }}
{{- if and .name .keySecretKey }}
- name: BLOBSEAL_AZURE_ACCOUNT_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .keySecretKey }}
- name: AZURE_STORAGE_CONNECTION_STRING
  value: {{ printf "DefaultEndpointsProtocol=%s;AccountName=%s;AccountKey=$(BLOBSEAL_AZURE_ACCOUNT_KEY);BlobEndpoint=%s://127.0.0.1:%d/%s;" $scheme .name $scheme ($.Values.ports.azure | int) .name | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod spec fields every blobseal pod has (gateway, app with sidecar, sweeper). */}}
{{- define "blobseal.podSpecCommon" -}}
serviceAccountName: {{ include "blobseal.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- include "blobseal.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod spec fields of the long-running pods (gateway, app with sidecar). */}}
{{- define "blobseal.podSpecServing" -}}
{{- include "blobseal.podSpecCommon" . }}
terminationGracePeriodSeconds: {{ include "blobseal.terminationGracePeriodSeconds" . }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Rollout: a data volume only one node can mount (ReadWriteOnce) cannot be held by an old and a new pod on
two nodes, so those replace their pods (Recreate); otherwise a new pod is ready before an old one goes. */}}
{{- define "blobseal.strategy" -}}
{{- if and .Values.persistence.enabled (not (has "ReadWriteMany" .Values.persistence.accessModes)) -}}
strategy:
  type: Recreate
{{- else -}}
strategy:
  type: RollingUpdate
  rollingUpdate:
    maxSurge: 1
    maxUnavailable: 0
{{- end -}}
{{- end -}}
