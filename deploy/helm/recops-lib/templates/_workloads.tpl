{{/*
recops.deployment: a long-running service, as a Deployment or, where
.Values.workloadKind says StatefulSet, with stable pod names (recops-ingest-0,
-1, ...) that a service can use as its identity.
Call with (dict "root" $ ...podSpec options).
*/}}
{{- define "recops.deployment" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
{{- $kind := $values.workloadKind | default "Deployment" -}}
apiVersion: apps/v1
kind: {{ $kind }}
metadata:
  name: {{ include "recops.fullname" $root }}
  labels:
    {{- include "recops.labels" $root | nindent 4 }}
spec:
  {{- if not (and $values.autoscaling $values.autoscaling.enabled) }}
  replicas: {{ $values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- if eq $kind "StatefulSet" }}
  serviceName: {{ include "recops.fullname" $root }}
  podManagementPolicy: Parallel
  {{- with $values.updateStrategy }}
  updateStrategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- else }}
  {{- with $values.strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "recops.selectorLabels" $root | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "recops.selectorLabels" $root | nindent 8 }}
        app.kubernetes.io/part-of: recops
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "recops.podSpec" . | nindent 6 }}
{{- end -}}

{{/* recops.service: the Service in front of the pods; metrics always, more ports on request. */}}
{{- define "recops.service" -}}
{{- $root := .root -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "recops.fullname" $root }}
  labels:
    {{- include "recops.labels" $root | nindent 4 }}
spec:
  type: {{ $root.Values.service.type }}
  selector:
    {{- include "recops.selectorLabels" $root | nindent 4 }}
  ports:
    {{- with .ports }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    - name: metrics
      port: {{ $root.Values.metrics.port }}
      targetPort: metrics
      protocol: TCP
{{- end -}}

{{- define "recops.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "recops.serviceAccountName" . }}
  labels:
    {{- include "recops.labels" . | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
{{- end -}}
{{- end -}}

{{/* recops.podDisruptionBudget: voluntary evictions take at most maxUnavailable pods at once. */}}
{{- define "recops.podDisruptionBudget" -}}
{{- if .Values.podDisruptionBudget.enabled -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "recops.fullname" . }}
  labels:
    {{- include "recops.labels" . | nindent 4 }}
spec:
  {{- if hasKey .Values.podDisruptionBudget "minAvailable" }}
  minAvailable: {{ .Values.podDisruptionBudget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .Values.podDisruptionBudget.maxUnavailable }}
  {{- end }}
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "recops.selectorLabels" . | nindent 6 }}
{{- end -}}
{{- end -}}

{{/* recops.horizontalPodAutoscaler: CPU-driven scaling between minReplicas and maxReplicas. */}}
{{- define "recops.horizontalPodAutoscaler" -}}
{{- $scaling := .Values.autoscaling -}}
{{- if $scaling.enabled -}}
{{- if gt (int $scaling.minReplicas) (int $scaling.maxReplicas) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "recops.fullname" . }}
  labels:
    {{- include "recops.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: {{ .Values.workloadKind | default "Deployment" }}
    name: {{ include "recops.fullname" . }}
  minReplicas: {{ $scaling.minReplicas }}
  maxReplicas: {{ $scaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $scaling.targetCPUUtilizationPercentage }}
  {{- with $scaling.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
{{- end -}}
