{{/* Names, labels and the small computations every template shares. */}}

{{- define "pitchin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pitchin.fullname" -}}
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

{{/* <fullname>-<service>, at most 63 characters. Call with (list $ "signups"). */}}
{{- define "pitchin.serviceFullname" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "pitchin.fullname" $root | trunc 50 | trimSuffix "-") (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pitchin.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "pitchin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: pitchin
app.kubernetes.io/version: {{ include "pitchin.imageTag" . | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one service's pods. Call with (list $ "signups"). */}}
{{- define "pitchin.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "pitchin.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "pitchin.serviceLabels" -}}
{{ include "pitchin.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "pitchin.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "pitchin.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "pitchin.imageTag" .) }}
{{- end }}
{{- end }}

{{- define "pitchin.kafkaNamespace" -}}
{{- .Values.kafka.strimzi.namespace | default .Release.Namespace }}
{{- end }}

{{/* The Secret holding a service's database URI: its own, the global one, or CloudNativePG's. */}}
{{- define "pitchin.databaseSecret" -}}
{{- $root := index . 0 }}
{{- $svc := index . 1 }}
{{- $db := $svc.database | default dict }}
{{- $name := $db.existingSecret | default $root.Values.database.existingSecret }}
{{- if and (not $name) $root.Values.database.cluster.enabled }}
{{- $name = printf "%s-app" $root.Values.database.cluster.name }}
{{- end }}
{{- required "database.existingSecret is empty and database.cluster.enabled is false: name the Secret holding the PostgreSQL URI" $name }}
{{- end }}

{{- define "pitchin.databaseSecretKey" -}}
{{- $root := index . 0 }}
{{- $db := (index . 1).database | default dict }}
{{- $db.uriKey | default $root.Values.database.uriKey }}
{{- end }}

{{/* Container securityContext shared by services and the migration Job. */}}
{{- define "pitchin.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "pitchin.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* "true" unless the service says `database: false` (no PostgreSQL: no database Secret, no
migration container, no PostgreSQL egress). Call with the service's values; empty means false. */}}
{{- define "pitchin.hasDatabase" -}}
{{- if not (and (kindIs "bool" .database) (not .database)) }}true{{ end }}
{{- end }}

{{/* "true" when the topic table names the service a writer or a consumer (a Kafka client: KafkaUser,
KEDA triggers, Kafka egress, the Kafka settings). Call with a service from pitchin.services. */}}
{{- define "pitchin.hasKafka" -}}
{{- if .kafka }}true{{ end }}
{{- end }}

{{/* The topic table, generated from pitchin_core.contracts.topics (`make contracts`): a list of
{name, writers, consumers: [{group, deadLetter}]}. As JSON: `include "pitchin.topics" $ | fromJsonArray`. */}}
{{- define "pitchin.topics" -}}
{{- (.Files.Get "files/topics.yaml" | fromYaml).topics | toJson }}
{{- end }}

{{/* Every service's values by name, as JSON (`include "pitchin.services" $ | fromJson`): its entry
deep-merged over serviceDefaults, with its `name` and, when the topic table names it, `kafka`:
{produces: [topic], consumes: [{topic, deadLetter}]} in the table's order. Templates read services
only through this, never .Values.services. */}}
{{- define "pitchin.services" -}}
{{- $topics := include "pitchin.topics" . | fromJsonArray }}
{{- $services := dict }}
{{- range $name, $own := .Values.services }}
{{- $svc := mustMergeOverwrite (deepCopy $.Values.serviceDefaults) $own (dict "name" $name) }}
{{- $produces := list }}
{{- $consumes := list }}
{{- $trims := list }}
{{- range $topic := $topics }}
{{- if has $name $topic.writers }}
{{- $produces = append $produces $topic.name }}
{{- end }}
{{- range $topic.consumers }}
{{- if eq .group $name }}
{{- $consumes = append $consumes (dict "topic" $topic.name "deadLetter" .deadLetter) }}
{{- end }}
{{- end }}
{{- if eq ($topic.trimmedBy | default "") $name }}
{{- $groups := list }}
{{- range $topic.consumers }}{{- if ne .group $name }}{{- $groups = append $groups .group }}{{- end }}{{- end }}
{{- $trims = append $trims (dict "topic" $topic.name "groups" $groups) }}
{{- end }}
{{- end }}
{{- if or $produces $consumes }}
{{- $_ := set $svc "kafka" (dict "produces" $produces "consumes" $consumes "trims" $trims) }}
{{- end }}
{{- $_ := set $services $name $svc }}
{{- end }}
{{- toJson $services }}
{{- end }}

{{/* The services a service calls over HTTP must be other enabled services. Call with (list $services $svc). */}}
{{- define "pitchin.checkServiceCalls" -}}
{{- $services := index . 0 }}
{{- $svc := index . 1 }}
{{- range $svc.calls | default list }}
{{- $callee := index $services . | default dict }}
{{- if or (eq . $svc.name) (not $callee.enabled) }}
{{- fail (printf "services.%s.calls names %q, which is not another enabled service" $svc.name .) }}
{{- end }}
{{- end }}
{{- end }}

{{/* kafka.topics.overrides may only name topics of the table (or their dead-letter topics). */}}
{{- define "pitchin.checkTopicOverrides" -}}
{{- $known := list }}
{{- range include "pitchin.topics" . | fromJsonArray }}
{{- $known = append $known .name }}
{{- range .consumers }}{{ $known = append $known .deadLetter }}{{ end }}
{{- end }}
{{- range $name, $_ := .Values.kafka.topics.overrides }}
{{- if not (has $name $known) }}
{{- fail (printf "kafka.topics.overrides names %q, which is not a topic of the code (files/topics.yaml)" $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* A value as text; whole numbers parsed from YAML as float64 print without an exponent. */}}
{{- define "pitchin.str" -}}
{{- if or (kindIs "float64" .) (kindIs "float32" .) }}
{{- if eq (float64 (int64 .)) (float64 .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/* NetworkPolicy egress rules shared by the services and the migration Job (YAML list items). */}}
{{- define "pitchin.dnsEgressRule" -}}
{{- $np := .Values.networkPolicy }}
{{- $rule := dict "to" $np.dns.peers "ports" (list (dict "port" 53 "protocol" "UDP") (dict "port" 53 "protocol" "TCP")) }}
{{- toYaml (list $rule) }}
{{- end }}

{{- define "pitchin.postgresqlEgressRule" -}}
{{- $np := .Values.networkPolicy }}
{{- $ports := list }}
{{- range $np.postgresql.ports }}{{ $ports = append $ports (dict "port" . "protocol" "TCP") }}{{ end }}
{{- $peers := $np.postgresql.peers }}
{{- if and (not $peers) .Values.database.cluster.enabled }}
{{- $peers = list (dict "podSelector" (dict "matchLabels" (dict "cnpg.io/cluster" .Values.database.cluster.name))) }}
{{- end }}
{{- if $peers }}
{{- toYaml (list (dict "to" $peers "ports" $ports)) }}
{{- else }}
{{- toYaml (list (dict "ports" $ports)) }}
{{- end }}
{{- end }}
