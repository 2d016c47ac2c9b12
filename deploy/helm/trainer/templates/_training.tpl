{{/*
trainer.snapshotContainer: ingest's snapshot command, run before training so
the trainer reads the newest ingested events.
*/}}
{{- define "trainer.snapshotContainer" -}}
{{- $snapshot := .Values.snapshot -}}
- name: snapshot
  {{- if $snapshot.image.digest }}
  image: "{{ $snapshot.image.repository }}@{{ $snapshot.image.digest }}"
  {{- else }}
  image: "{{ $snapshot.image.repository }}:{{ $snapshot.image.tag | default .Chart.AppVersion }}"
  {{- end }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: [python, -m, ingest, snapshot]
  envFrom:
    - configMapRef:
        name: {{ include "recops.fullname" . }}
  {{- with $snapshot.settings }}
  env:
    {{- range $name, $value := . }}
    - name: RECOPS_INGEST_{{ $name }}
      value: {{ $value | toString | quote }}
    {{- end }}
  {{- end }}
  resources:
    {{- toYaml $snapshot.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: state
      mountPath: {{ .Values.state.mountPath }}
    - name: tmp
      mountPath: /tmp
{{- end -}}

{{/* trainer.jobSpec: one training run; shared by the Job and the CronJob. */}}
{{- define "trainer.jobSpec" -}}
{{- $root := .root -}}
backoffLimit: {{ .settings.backoffLimit }}
podFailurePolicy:
  rules:
    - action: FailJob
      onExitCodes:
        containerName: {{ $root.Chart.Name }}
        operator: NotIn
        values: [0, 75]
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
activeDeadlineSeconds: {{ .settings.activeDeadlineSeconds }}
{{- with .settings.ttlSecondsAfterFinished }}
ttlSecondsAfterFinished: {{ . }}
{{- end }}
template:
  metadata:
    labels:
      {{- include "recops.selectorLabels" $root | nindent 6 }}
      app.kubernetes.io/part-of: recops
      {{- with $root.Values.podLabels }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    annotations:
      checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
      {{- with $root.Values.podAnnotations }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
  spec:
    {{- $init := ternary (include "trainer.snapshotContainer" $root | fromYamlArray) list $root.Values.snapshot.enabled }}
    {{- include "recops.podSpec" (dict "root" $root "restartPolicy" "Never" "batch" true "initContainers" $init) | nindent 4 }}
{{- end -}}
