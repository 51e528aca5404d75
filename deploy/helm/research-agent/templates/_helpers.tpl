{{/* The release's full name, at most 40 characters (room for "-evaluator-xxxxx"). */}}
{{- define "ra.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "ra.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "planner"). */}}
{{- define "ra.selector" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The image of a service: (dict "ctx" $ "name" "planner-svc"). */}}
{{- define "ra.image" -}}
{{- printf "%s/%s:%s" .ctx.Values.image.prefix .name .ctx.Values.image.tag -}}
{{- end -}}

{{/* gRPC URL of a peer: (dict "ctx" $ "component" "registry"). */}}
{{- define "ra.peer" -}}
{{- $port := index .ctx.Values.ports .component -}}
{{- $scheme := ternary "https" "http" .ctx.Values.auth.enabled -}}
{{- if .ctx.Values.peerHost -}}
{{- printf "%s://%s:%v" $scheme .ctx.Values.peerHost $port -}}
{{- else -}}
{{- printf "%s://%s-%s.%s.svc:%v" $scheme (include "ra.fullname" .ctx) .component .ctx.Release.Namespace $port -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the CA, the services' certificates and the tokens. */}}
{{- define "ra.authSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "ra.fullname" .)) -}}
{{- end -}}

{{/* Who may call each service, as TOML: (dict "component" "sandbox"). */}}
{{- define "ra.allow" -}}
{{- if eq .component "sandbox" -}}
"evaluator" = ["*"]
"planner" = ["GetCapabilities", "ValidateJob"]
{{- else if eq .component "planner" -}}
"researcher" = ["*"]
{{- else if eq .component "evaluator" -}}
"planner" = ["*"]
"researcher" = ["*"]
{{- else -}}
"planner" = ["*"]
"evaluator" = ["*"]
"researcher" = ["*"]
{{- end -}}
{{- end -}}

{{/* The [server] section of a service's TOML: (dict "ctx" $ "component" "registry" "listen" "0.0.0.0"). */}}
{{- define "ra.serverToml" -}}
{{- $v := .ctx.Values -}}
{{- $dir := "/etc/research-agent/auth" -}}
[server]
listen = "{{ .listen }}:{{ index $v.ports .component }}"
log_format = {{ $v.logFormat | quote }}
log_filter = {{ $v.logFilter | quote }}
{{- if $v.auth.enabled }}
health_listen = "{{ .listen }}:{{ index $v.healthPorts .component }}"

[server.tls]
cert_file = "{{ $dir }}/{{ .component }}.crt"
key_file = "{{ $dir }}/{{ .component }}.key"
client_ca_file = "{{ $dir }}/ca.crt"

[server.auth]
tokens_file = "{{ $dir }}/tokens"

[server.auth.allow]
{{ include "ra.allow" (dict "component" .component) }}
{{- if or (eq .component "planner") (eq .component "evaluator") }}

[server.client]
ca_file = "{{ $dir }}/ca.crt"
cert_file = "{{ $dir }}/{{ .component }}.crt"
key_file = "{{ $dir }}/{{ .component }}.key"
token_file = "{{ $dir }}/{{ .component }}.token"
{{- end }}
{{- end }}
{{- end -}}

{{/* Startup, liveness and readiness probes: (dict "ctx" $ "component" "planner" "binary" "planner-svc"). */}}
{{- define "ra.probes" -}}
{{- $p := .ctx.Values.probes -}}
{{- $handler := "" -}}
{{- $port := index .ctx.Values.ports .component -}}
{{- if .ctx.Values.auth.enabled -}}
{{- $port = index .ctx.Values.healthPorts .component -}}
{{- end -}}
{{- if $p.grpc -}}
{{- $handler = printf "grpc:\n  port: %v" $port -}}
{{- else -}}
{{- $handler = printf "exec:\n  command: [/usr/local/bin/%s, --probe]" .binary -}}
{{- end -}}
startupProbe:
  {{- $handler | nindent 2 }}
  periodSeconds: 2
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.startupFailureThreshold }}
readinessProbe:
  {{- $handler | nindent 2 }}
  periodSeconds: {{ $p.periodSeconds }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.failureThreshold }}
livenessProbe:
  {{- $handler | nindent 2 }}
  periodSeconds: {{ mul $p.periodSeconds 2 }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ mul $p.failureThreshold 2 }}
{{- end -}}

{{/* The pod-level security context. */}}
{{- define "ra.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The container-level security context. */}}
{{- define "ra.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Pod spec fields every service shares: (dict "ctx" $ "values" .Values.planner). */}}
{{- define "ra.podCommon" -}}
{{- with .ctx.Values.image.pullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .ctx.Values.hostNetwork }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
securityContext:
  {{- include "ra.podSecurityContext" .ctx | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Environment every service container gets. */}}
{{- define "ra.env" -}}
- name: RA_CONFIG
  value: /etc/research-agent/{{ .component }}.toml
{{- end -}}
