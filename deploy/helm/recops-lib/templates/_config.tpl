{{/*
recops.configmap: the ConfigMap every recops container reads its settings
from (envFrom). Call with (dict "root" $ "computed" (dict NAME value ...)).

Keys are the environment variables the services read:
  RECOPS_KAFKA_BOOTSTRAP   <- kafka.bootstrap
  RECOPS_TOPIC_PREFIX      <- kafka.topicPrefix
  RECOPS_STATE_DIR         <- state.mountPath
  RECOPS_<SERVICE>_METRICS_PORT <- metrics.port
  RECOPS_<SERVICE>_<NAME>  <- settings.<NAME>, and what the chart computes
A settings key that the chart already computes is refused, so a port or a
host can only be set in one place.
*/}}
{{- define "recops.configmap" -}}
{{- $root := .root -}}
{{- $prefix := include "recops.envPrefix" $root -}}
{{- $computed := merge (dict "METRICS_PORT" $root.Values.metrics.port) (.computed | default dict) -}}
{{- range $name, $_ := $root.Values.settings }}
{{- if not (regexMatch "^[A-Z][A-Z0-9_]*$" $name) }}
{{- fail (printf "settings.%s: write setting names as the service reads them, upper case without the %s prefix (e.g. LOG_LEVEL)" $name $prefix) }}
{{- end }}
{{- if hasKey $computed $name }}
{{- fail (printf "settings.%s is set by the chart from its own values; change those instead (see deploy/helm/README.md)" $name) }}
{{- end }}
{{- end }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "recops.fullname" $root }}
  labels:
    {{- include "recops.labels" $root | nindent 4 }}
data:
  RECOPS_KAFKA_BOOTSTRAP: {{ required "kafka.bootstrap is required" $root.Values.kafka.bootstrap | quote }}
  RECOPS_TOPIC_PREFIX: {{ $root.Values.kafka.topicPrefix | quote }}
  RECOPS_STATE_DIR: {{ $root.Values.state.mountPath | quote }}
  {{- range $name, $value := merge (dict) $computed $root.Values.settings }}
  {{ $prefix }}{{ $name }}: {{ tpl (toString $value) $root | quote }}
  {{- end }}
{{- end -}}
