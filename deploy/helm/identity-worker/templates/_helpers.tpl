{{/* Names and labels, Helm's and Bitnami's conventions (app.kubernetes.io/*). */}}
{{- define "identity-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "identity-worker.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "identity-worker.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "identity-worker.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "identity-worker.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "identity-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: identity-worker
{{- end -}}

{{/* Selector labels of one component (worker, console, migrate, topics). */}}
{{- define "identity-worker.selector" -}}
app.kubernetes.io/name: {{ include "identity-worker.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "identity-worker.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "identity-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "identity-worker.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding DATABASE_URL: the operator's, or the chart's (refused when neither). */}}
{{- define "identity-worker.databaseSecret" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else if .Values.database.url -}}
{{- include "identity-worker.fullname" . -}}
{{- else -}}
{{- fail "database: set database.existingSecret (a Secret holding DATABASE_URL) or database.url; the chart applies no placeholder" -}}
{{- end -}}
{{- end -}}

{{- define "identity-worker.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}{{ .Values.database.existingSecretKey }}{{- else -}}DATABASE_URL{{- end -}}
{{- end -}}

{{- define "identity-worker.tlsDir" -}}/etc/identity-worker/tls{{- end -}}

{{/*
The worker's settings that are not secret, as environment variables (DESIGN section 7). One
list for the ConfigMap (worker and console) and the hook Jobs, which run before the ConfigMap
exists (pre-install hooks precede the release's own objects).
*/}}
{{- define "identity-worker.settings" -}}
KAFKA_BOOTSTRAP_SERVERS: {{ .Values.kafka.bootstrapServers | quote }}
KAFKA_SECURITY_PROTOCOL: {{ .Values.kafka.securityProtocol | quote }}
{{- with .Values.kafka.saslMechanism }}
KAFKA_SASL_MECHANISM: {{ . | quote }}
{{- end }}
{{- $tls := .Values.kafka.tls }}
{{- $dir := include "identity-worker.tlsDir" . }}
{{- if and $tls.existingSecret (eq .Values.kafka.securityProtocol "PLAINTEXT") }}
{{- fail "kafka.tls.existingSecret is set while kafka.securityProtocol is PLAINTEXT: the worker would refuse it (it would connect in clear); set SSL or SASL_SSL" }}
{{- end }}
{{- if and (hasPrefix "SASL_" .Values.kafka.securityProtocol) (not .Values.kafka.saslMechanism) }}
{{- fail "kafka.securityProtocol SASL_* needs kafka.saslMechanism" }}
{{- end }}
{{- if $tls.existingSecret }}
{{- with $tls.caKey }}
KAFKA_SSL_CA_LOCATION: {{ printf "%s/%s" $dir . | quote }}
{{- end }}
{{- with $tls.certificateKey }}
KAFKA_SSL_CERTIFICATE_LOCATION: {{ printf "%s/%s" $dir . | quote }}
{{- end }}
{{- with $tls.keyKey }}
KAFKA_SSL_KEY_LOCATION: {{ printf "%s/%s" $dir . | quote }}
{{- end }}
{{- with $tls.keyPasswordKey }}
KAFKA_SSL_KEY_PASSWORD_FILE: {{ printf "%s/%s" $dir . | quote }}
{{- end }}
{{- with $tls.saslUsernameKey }}
KAFKA_SASL_USERNAME_FILE: {{ printf "%s/%s" $dir . | quote }}
{{- end }}
{{- with $tls.saslPasswordKey }}
KAFKA_SASL_PASSWORD_FILE: {{ printf "%s/%s" $dir . | quote }}
{{- end }}
{{- end }}
IDENTITY_WORKER_GUARANTEE: {{ .Values.worker.guarantee | quote }}
IDENTITY_WORKER_GROUP_ID: {{ .Values.worker.groupId | quote }}
IDENTITY_WORKER_INPUT_TOPIC: {{ .Values.topics.input | quote }}
IDENTITY_WORKER_ENRICHED_TOPIC: {{ .Values.topics.enriched | quote }}
IDENTITY_WORKER_REJECTED_TOPIC: {{ .Values.topics.rejected | quote }}
IDENTITY_WORKER_DLQ_TOPIC: {{ .Values.topics.dlq | quote }}
IDENTITY_WORKER_PROCESSES: {{ .Values.worker.processes | quote }}
IDENTITY_WORKER_SHUTDOWN_TIMEOUT_SECONDS: {{ .Values.worker.shutdownTimeoutSeconds | quote }}
IDENTITY_WORKER_REQUEST_TIMEOUT_MS: {{ .Values.worker.requestTimeoutMs | quote }}
IDENTITY_WORKER_LOG_LEVEL: {{ .Values.worker.logLevel | quote }}
IDENTITY_WORKER_METRICS_PORT: {{ .Values.worker.metricsPort | quote }}
# The probes and Prometheus reach the pod's IP: listen on every interface.
IDENTITY_WORKER_METRICS_HOST: "0.0.0.0"
{{- range $name, $value := .Values.worker.extraEnv }}
{{ $name }}: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* DATABASE_URL from its Secret, as a container env entry. */}}
{{- define "identity-worker.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "identity-worker.databaseSecret" . }}
      key: {{ include "identity-worker.databaseSecretKey" . }}
{{- end -}}

{{/* The mounts every container gets: a writable /tmp (the root is read-only) and the TLS Secret. */}}
{{- define "identity-worker.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.existingSecret }}
- name: tls
  mountPath: {{ include "identity-worker.tlsDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "identity-worker.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .Values.kafka.tls.existingSecret }}
# Readable by the pod's group (fsGroup) only: 0440.
- name: tls
  secret:
    secretName: {{ .Values.kafka.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* terminationGracePeriodSeconds: K6's bound + settling the last transaction + leaving the group. */}}
{{- define "identity-worker.gracePeriod" -}}
{{- add (ceil .Values.worker.shutdownTimeoutSeconds) (div (add .Values.worker.requestTimeoutMs 999) 1000) 15 -}}
{{- end -}}
