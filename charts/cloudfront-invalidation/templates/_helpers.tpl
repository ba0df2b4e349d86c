{{/* The CloudFrontInvalidation's name. */}}
{{- define "cfinvhook.name" -}}
{{- default (printf "%s-cdn-invalidation" .Release.Name) .Values.nameOverride | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/* Name of the wait Job and of its ServiceAccount, Role and RoleBinding. */}}
{{- define "cfinvhook.waitName" -}}
{{- printf "%s-wait" (include "cfinvhook.name" .) }}
{{- end }}

{{- define "cfinvhook.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "cfinvhook.hooks" -}}
{{- required "hookEvents must name at least one Helm hook" (join "," .Values.hookEvents) }}
{{- end }}

{{- define "cfinvhook.image" -}}
{{- if .Values.wait.image.digest }}
{{- printf "%s@%s" .Values.wait.image.repository .Values.wait.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.wait.image.repository (default .Chart.AppVersion .Values.wait.image.tag) }}
{{- end }}
{{- end }}

{{- define "cfinvhook.waitTimeout" -}}
{{- default (printf "%ds" (add (int .Values.timeoutSeconds) 60)) .Values.wait.timeout }}
{{- end }}
