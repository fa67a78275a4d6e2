{{/* How many pods a service runs through disruptions and load: PodDisruptionBudget, and an HPA on
CPU or, for a consumer with keda.enabled, a KEDA ScaledObject (never both). Each template takes
(dict "root" $ "svc" <a service from pitchin.services> "services" <all of them>). */}}

{{/* "true" when KEDA scales the service: autoscaling on, KEDA on, and it consumes a topic. */}}
{{- define "pitchin.service.usesKeda" -}}
{{- $svc := .svc }}
{{- if and $svc.autoscaling.enabled .root.Values.keda.enabled (include "pitchin.hasKafka" $svc) }}
{{- if $svc.kafka.consumes }}true{{ end }}
{{- end }}
{{- end }}

{{- define "pitchin.service.podDisruptionBudget" }}
{{- $root := .root }}
{{- $svc := .svc }}
{{- if $svc.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "pitchin.serviceFullname" (list $root $svc.name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pitchin.serviceLabels" (list $root $svc.name) | nindent 4 }}
spec:
  maxUnavailable: {{ $svc.podDisruptionBudget.maxUnavailable }}
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "pitchin.selectorLabels" (list $root $svc.name) | nindent 6 }}
{{- end }}
{{- end }}

{{- define "pitchin.service.horizontalPodAutoscaler" }}
{{- $root := .root }}
{{- $svc := .svc }}
{{- $autoscaling := $svc.autoscaling }}
{{- $fullname := include "pitchin.serviceFullname" (list $root $svc.name) }}
{{- if and $autoscaling.enabled (not (include "pitchin.service.usesKeda" .)) }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $fullname }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pitchin.serviceLabels" (list $root $svc.name) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $fullname }}
  minReplicas: {{ $autoscaling.minReplicas }}
  maxReplicas: {{ $autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $autoscaling.targetCPUUtilizationPercentage }}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
{{- end }}
{{- end }}

{{- define "pitchin.service.scaledObject" }}
{{- $root := .root }}
{{- $svc := .svc }}
{{- $autoscaling := $svc.autoscaling }}
{{- $fullname := include "pitchin.serviceFullname" (list $root $svc.name) }}
{{- if include "pitchin.service.usesKeda" . }}
---
# KEDA owns the HPA of this Deployment: one Kafka-lag trigger per consumed topic, plus CPU.
# KEDA never scales a consumer group past its topic's partitions (allowIdleConsumers: false).
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ $fullname }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pitchin.serviceLabels" (list $root $svc.name) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $fullname }}
  minReplicaCount: {{ $autoscaling.minReplicas }}
  maxReplicaCount: {{ $autoscaling.maxReplicas }}
  pollingInterval: {{ $root.Values.keda.pollingInterval }}
  cooldownPeriod: {{ $root.Values.keda.cooldownPeriod }}
  triggers:
    {{- range $svc.kafka.consumes }}
    - type: kafka
      name: {{ printf "lag-%s" .topic | replace "." "-" | quote }}
      metadata:
        bootstrapServers: {{ $root.Values.kafka.bootstrap | quote }}
        consumerGroup: {{ $svc.name | quote }}
        topic: {{ .topic | quote }}
        lagThreshold: {{ include "pitchin.str" $autoscaling.lagThreshold | quote }}
        offsetResetPolicy: earliest
        allowIdleConsumers: "false"
      {{- with $root.Values.keda.authenticationRef }}
      authenticationRef:
        name: {{ . }}
      {{- end }}
    {{- end }}
    - type: cpu
      metricType: Utilization
      metadata:
        value: {{ include "pitchin.str" $autoscaling.targetCPUUtilizationPercentage | quote }}
{{- end }}
{{- end }}
