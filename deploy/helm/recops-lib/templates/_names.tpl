{{/*
Names and labels every recops chart uses. A chart's name is its service's
name (ingest, trainer, inference, monitor, drill).
*/}}

{{- define "recops.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "recops.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "recops.labels" -}}
{{ include "recops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: recops
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "recops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "recops.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* RECOPS_<SERVICE>_, the prefix of the service's own settings. */}}
{{- define "recops.envPrefix" -}}
{{- printf "RECOPS_%s_" (upper .Chart.Name) -}}
{{- end -}}

{{/*
The image reference: a digest pins it exactly; otherwise the tag (the chart's
appVersion by default) with a variant suffix: image.variant, or for a chart
with a gpu value cuda or cpu (0.1.0-cuda) as the GPU is requested or not.
*/}}
{{- define "recops.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- $tag := $image.tag | default .Chart.AppVersion -}}
{{- $variant := $image.variant -}}
{{- if and (not $variant) .Values.gpu -}}
{{- $variant = ternary "cuda" "cpu" .Values.gpu.enabled -}}
{{- end -}}
{{- if $variant -}}
{{- $tag = printf "%s-%s" $tag $variant -}}
{{- end -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end -}}
