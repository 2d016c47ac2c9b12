{{/*
recops.probe: one probe from values. An httpGet probe without a port asks the
metrics port; a grpc probe without a port asks the service's gRPC port
(Kubernetes' grpc probes need the number, not a port name).
Call with (dict "root" $ "probe" .Values.probes.readiness).
*/}}
{{- define "recops.probe" -}}
{{- $probe := deepCopy .probe -}}
{{- if hasKey $probe "httpGet" }}
{{- if not (hasKey $probe.httpGet "port") }}
{{- $_ := set $probe.httpGet "port" "metrics" }}
{{- end }}
{{- end }}
{{- if hasKey $probe "grpc" }}
{{- if not (hasKey $probe.grpc "port") }}
{{- $_ := set $probe.grpc "port" (int .root.Values.grpc.port) }}
{{- end }}
{{- end }}
{{- toYaml $probe }}
{{- end -}}

{{/*
recops.podSpec: the pod every recops workload runs: one container of the
service, non-root with a read-only root file system, settings from the
ConfigMap, secrets by reference, the shared state volume, probes, resources.
Call with (dict "root" $) and optionally "restartPolicy", "args", "ports"
(extra container ports), "env" (extra variables), "resources" (instead of
.Values.resources), "initContainers" and "batch" true for Jobs, which get no
readiness probe.
*/}}
{{- define "recops.podSpec" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
{{- $resources := .resources | default $values.resources -}}
serviceAccountName: {{ include "recops.serviceAccountName" $root }}
automountServiceAccountToken: {{ $values.serviceAccount.automountToken }}
{{- with $values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
restartPolicy: {{ .restartPolicy | default "Always" }}
terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml $values.podSecurityContext | nindent 2 }}
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range . }}
  - {{ toYaml (merge (deepCopy .) (dict "labelSelector" (dict "matchLabels" (fromYaml (include "recops.selectorLabels" $root))))) | nindent 4 | trim }}
  {{- end }}
{{- end }}
{{- with .initContainers }}
initContainers:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: {{ $root.Chart.Name }}
    image: {{ include "recops.image" $root | quote }}
    imagePullPolicy: {{ $values.image.pullPolicy }}
    {{- with $values.command }}
    command:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with (.args | default $values.args) }}
    args:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    ports:
      - name: metrics
        containerPort: {{ $values.metrics.port }}
        protocol: TCP
      {{- with .ports }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    envFrom:
      - configMapRef:
          name: {{ include "recops.fullname" $root }}
      {{- range $values.secrets.envFrom }}
      - secretRef:
          name: {{ . }}
      {{- end }}
    env:
      - name: POD_NAME
        valueFrom:
          fieldRef:
            fieldPath: metadata.name
      - name: POD_NAMESPACE
        valueFrom:
          fieldRef:
            fieldPath: metadata.namespace
      {{- with .env }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
      {{- with $values.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with $values.probes.startup }}
    startupProbe:
      {{- include "recops.probe" (dict "root" $root "probe" .) | nindent 6 }}
    {{- end }}
    {{- with $values.probes.liveness }}
    livenessProbe:
      {{- include "recops.probe" (dict "root" $root "probe" .) | nindent 6 }}
    {{- end }}
    {{- if and $values.probes.readiness (not .batch) }}
    readinessProbe:
      {{- include "recops.probe" (dict "root" $root "probe" $values.probes.readiness) | nindent 6 }}
    {{- end }}
    resources:
      {{- toYaml $resources | nindent 6 }}
    securityContext:
      {{- toYaml $values.securityContext | nindent 6 }}
    volumeMounts:
      - name: state
        mountPath: {{ $values.state.mountPath }}
        readOnly: {{ $values.state.readOnly }}
      - name: tmp
        mountPath: /tmp
      {{- range $values.secrets.files }}
      - name: secret-{{ .name }}
        mountPath: {{ .mountPath }}
        readOnly: true
      {{- end }}
      {{- with $values.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  - name: state
    {{- if $values.state.claimName }}
    persistentVolumeClaim:
      claimName: {{ $values.state.claimName }}
      readOnly: {{ $values.state.readOnly }}
    {{- else }}
    emptyDir: {}
    {{- end }}
  - name: tmp
    emptyDir:
      sizeLimit: {{ $values.tmpSizeLimit }}
  {{- range $values.secrets.files }}
  - name: secret-{{ .name }}
    secret:
      secretName: {{ .name }}
      defaultMode: 0440
  {{- end }}
  {{- with $values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}
