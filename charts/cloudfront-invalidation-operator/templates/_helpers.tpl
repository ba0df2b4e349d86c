{{/* Chart name, truncated to a DNS label. */}}
{{- define "cfinv.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, prefixed to the chart name unless it contains it. */}}
{{- define "cfinv.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cfinv.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. helm.sh/chart and managed-by are the only ones deploy/ leaves out. */}}
{{- define "cfinv.labels" -}}
helm.sh/chart: {{ include "cfinv.chart" . }}
{{ include "cfinv.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "cfinv.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cfinv.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cfinv.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cfinv.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cfinv.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on: forced by leaderElection.enabled, or auto and more than one replica. */}}
{{- define "cfinv.leaderElection" -}}
{{- $enabled := .Values.leaderElection.enabled }}
{{- if eq (toString $enabled) "auto" }}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- else if $enabled }}true
{{- end }}
{{- end }}

{{- define "cfinv.leaseName" -}}
{{- default (include "cfinv.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* PromQL label matchers of this release's series: prometheusRule.selector, or what a ServiceMonitor gives them. */}}
{{- define "cfinv.promSelector" -}}
{{- if .Values.prometheusRule.selector }}
{{- .Values.prometheusRule.selector }}
{{- else }}
{{- printf "job=%q,namespace=%q" (include "cfinv.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* The runbook of one alert: an anchor of docs/metrics.md (GitHub's anchor of the alert's heading). */}}
{{- define "cfinv.runbookUrl" -}}
{{- $base := .root.Values.prometheusRule.runbookBaseUrl | default (printf "%s/blob/main/docs/metrics.md" .root.Chart.Home) }}
{{- printf "%s#%s" $base (lower .alert) }}
{{- end }}
