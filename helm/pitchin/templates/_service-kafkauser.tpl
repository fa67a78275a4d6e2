{{/* A service's Strimzi KafkaUser, from the topic table. Takes (dict "root" $ "svc" <a service from
pitchin.services> "services" <all of them>). */}}

{{- define "pitchin.service.kafkaUser" }}
{{- $root := .root }}
{{- $svc := .svc }}
{{- $name := $svc.name }}
{{- if and $root.Values.kafka.users.enabled (include "pitchin.hasKafka" $svc) }}
---
# The principal of this service's Kafka clients: it may write the topics it produces, read the
# topics it consumes as group "{{ $name }}", and write those topics' dead-letter topics.
apiVersion: {{ $root.Values.kafka.strimzi.apiVersion }}
kind: KafkaUser
metadata:
  name: {{ include "pitchin.serviceFullname" (list $root $name) }}
  namespace: {{ include "pitchin.kafkaNamespace" $root }}
  labels:
    strimzi.io/cluster: {{ $root.Values.kafka.strimzi.clusterName }}
    {{- include "pitchin.serviceLabels" (list $root $name) | nindent 4 }}
spec:
  authentication:
    type: {{ $root.Values.kafka.users.authentication }}
  authorization:
    type: simple
    acls:
      {{- range $svc.kafka.produces }}
      - resource:
          type: topic
          name: {{ . }}
          patternType: literal
        operations: [Write, Describe]
      {{- end }}
      {{- range $svc.kafka.consumes }}
      - resource:
          type: topic
          name: {{ .topic }}
          patternType: literal
        operations: [Read, Describe]
      {{- if eq .topic "pitchin.ingest.v1" }}
      # Every registered publisher's own topic, pitchin.ingest.v1.<slug> (kafka-users-publishers.yaml),
      # read by pattern subscription (pitchin_core.kafka_auth).
      - resource:
          type: topic
          name: pitchin.ingest.v1.
          patternType: prefix
        operations: [Read, Describe]
      {{- end }}
      - resource:
          type: topic
          name: {{ .deadLetter }}
          patternType: literal
        operations: [Write, Describe]
      {{- end }}
      {{- if $svc.kafka.consumes }}
      - resource:
          type: group
          name: {{ $name }}
          patternType: literal
        operations: [Read]
      {{- end }}
      {{- range $svc.kafka.trims }}
      # Deletes what every consumer group has applied from this topic and every publisher's own
      # topic (people in clear as publishers sent them: docs/privacy.md), reading how far the
      # other groups have committed.
      - resource:
          type: topic
          name: {{ .topic }}
          patternType: literal
        operations: [Delete]
      - resource:
          type: topic
          name: {{ .topic }}.
          patternType: prefix
        operations: [Delete]
      {{- range .groups }}
      - resource:
          type: group
          name: {{ . }}
          patternType: literal
        operations: [Describe]
      {{- end }}
      {{- end }}
{{- end }}
{{- end }}
