{{/* The chart's name, or nameOverride. */}}
{{- define "taskapi-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of every object: the release name when it already says taskapi-operator
(so `helm install taskapi-operator` names things as config/ does), else
<release>-taskapi-operator. ClusterRoles are cluster-wide, so two releases must differ.
*/}}
{{- define "taskapi-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "taskapi-operator.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "taskapi-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "taskapi-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "taskapi-operator.labels" -}}
{{ include "taskapi-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "taskapi-operator.serviceAccountName" -}}
{{- default (include "taskapi-operator.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* Refuses values that would run the operator wrongly, naming the value to change. */}}
{{- define "taskapi-operator.validate" -}}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount=%d needs leaderElection.enabled=true: without leader election every replica reconciles at once. Set replicaCount=1 or leaderElection.enabled=true." (int .Values.replicaCount)) }}
{{- end }}
{{- end }}
