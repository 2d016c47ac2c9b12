{{/* recops.serviceMonitor: Prometheus (operator) scrapes the Service's metrics port. */}}
{{- define "recops.serviceMonitor" -}}
{{- $monitor := .Values.serviceMonitor -}}
{{- if $monitor.enabled -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "recops.fullname" . }}
  labels:
    {{- include "recops.labels" . | nindent 4 }}
    {{- with $monitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "recops.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: metrics
      path: /metrics
      interval: {{ $monitor.interval }}
      scrapeTimeout: {{ $monitor.scrapeTimeout }}
{{- end -}}
{{- end -}}

{{/* recops.podMonitor: for batch pods that no Service fronts (the trainer). */}}
{{- define "recops.podMonitor" -}}
{{- $monitor := .Values.podMonitor -}}
{{- if $monitor.enabled -}}
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata:
  name: {{ include "recops.fullname" . }}
  labels:
    {{- include "recops.labels" . | nindent 4 }}
    {{- with $monitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "recops.selectorLabels" . | nindent 6 }}
  podMetricsEndpoints:
    - port: metrics
      path: /metrics
      interval: {{ $monitor.interval }}
{{- end -}}
{{- end -}}

{{/*
recops.prometheusRule: the alerting rules of this service, taken from the
Prometheus rule files in deploy/prometheus/ (reached through the chart's
files/prometheus link). prometheusRule.groups names the rule groups that
belong to this chart; a named group that no file holds is an error, so a
renamed group cannot silently drop its alerts.
*/}}
{{- define "recops.prometheusRule" -}}
{{- $rule := .Values.prometheusRule -}}
{{- if $rule.enabled -}}
{{- $found := dict -}}
{{- range $path, $_ := .Files.Glob "files/prometheus/*.yml" }}
{{- range (fromYaml ($.Files.Get $path)).groups }}
{{- if has .name $rule.groups }}
{{- $_ := set $found .name . }}
{{- end }}
{{- end }}
{{- end }}
{{- range $rule.groups }}
{{- if not (hasKey $found .) }}
{{- fail (printf "prometheusRule.groups: no rule group %q in deploy/prometheus/*.yml" .) }}
{{- end }}
{{- end -}}
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: {{ include "recops.fullname" . }}
  labels:
    {{- include "recops.labels" . | nindent 4 }}
    {{- with $rule.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  groups:
    {{- range $rule.groups }}
    - {{ toYaml (get $found .) | nindent 6 | trim }}
    {{- end }}
{{- end -}}
{{- end -}}
