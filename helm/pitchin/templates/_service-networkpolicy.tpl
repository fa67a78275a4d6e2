{{/* A service's NetworkPolicy: HTTP in from the ingress controller (with an ingress), Prometheus,
the services that call it and the listed peers; out to DNS, PostgreSQL and Kafka (those it uses),
the services it calls, the collector and its extras. Takes (dict "root" $ "svc" <a service from
pitchin.services> "services" <all of them>). */}}

{{- define "pitchin.service.networkPolicy" }}
{{- $root := .root }}
{{- $svc := .svc }}
{{- $name := $svc.name }}
{{- if $root.Values.networkPolicy.enabled }}
{{- $np := $root.Values.networkPolicy }}
{{- $ingressRules := list }}
{{- $httpPort := list (dict "port" "http" "protocol" "TCP") }}
{{- if $svc.ingress.enabled }}
{{- $ingressRules = append $ingressRules (dict "from" $np.ingressControllerPeers "ports" $httpPort) }}
{{- end }}
{{- if $np.monitoringPeers }}
{{- $ingressRules = append $ingressRules (dict "from" $np.monitoringPeers "ports" $httpPort) }}
{{- end }}
{{- if $np.extraIngressPeers }}
{{- $ingressRules = append $ingressRules (dict "from" $np.extraIngressPeers "ports" $httpPort) }}
{{- end }}
{{- /* The pods of the enabled services that call this one over HTTP (their `calls` name it). */}}
{{- $callers := list }}
{{- range $callerName, $caller := .services }}
{{- if and $caller.enabled (ne $callerName $name) (has $name ($caller.calls | default list)) }}
{{- $callers = append $callers (dict "podSelector" (dict "matchLabels" (include "pitchin.selectorLabels" (list $root $callerName) | fromYaml))) }}
{{- end }}
{{- end }}
{{- if $callers }}
{{- $ingressRules = append $ingressRules (dict "from" $callers "ports" $httpPort) }}
{{- end }}
{{- $ingressRules = concat $ingressRules (($svc.networkPolicy | default dict).extraIngress | default list) }}
{{- $egressRules := list }}
{{- if include "pitchin.hasKafka" $svc }}
{{- $kafkaPeers := $np.kafka.peers }}
{{- if not $kafkaPeers }}
{{- $kafkaPeers = list (dict
  "namespaceSelector" (dict "matchLabels" (dict "kubernetes.io/metadata.name" (include "pitchin.kafkaNamespace" $root)))
  "podSelector" (dict "matchLabels" (dict "strimzi.io/cluster" $root.Values.kafka.strimzi.clusterName "strimzi.io/kind" "Kafka"))) }}
{{- end }}
{{- $kafkaPorts := list }}
{{- range $np.kafka.ports }}{{ $kafkaPorts = append $kafkaPorts (dict "port" . "protocol" "TCP") }}{{ end }}
{{- $egressRules = append $egressRules (dict "to" $kafkaPeers "ports" $kafkaPorts) }}
{{- end }}
{{- with $svc.calls }}
{{- $callees := list }}
{{- range . }}
{{- $callees = append $callees (dict "podSelector" (dict "matchLabels" (include "pitchin.selectorLabels" (list $root .) | fromYaml))) }}
{{- end }}
{{- $egressRules = append $egressRules (dict "to" $callees "ports" (list (dict "port" 8000 "protocol" "TCP"))) }}
{{- end }}
{{- if $root.Values.otel.endpoint }}
{{- $otelPorts := list }}
{{- range $np.otel.ports }}{{ $otelPorts = append $otelPorts (dict "port" . "protocol" "TCP") }}{{ end }}
{{- if $np.otel.peers }}
{{- $egressRules = append $egressRules (dict "to" $np.otel.peers "ports" $otelPorts) }}
{{- else }}
{{- $egressRules = append $egressRules (dict "ports" $otelPorts) }}
{{- end }}
{{- end }}
{{- $egressRules = concat $egressRules (($svc.networkPolicy | default dict).extraEgress | default list) }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "pitchin.serviceFullname" (list $root $name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pitchin.serviceLabels" (list $root $name) | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "pitchin.selectorLabels" (list $root $name) | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    {{- if $ingressRules }}
    {{- toYaml $ingressRules | nindent 4 }}
    {{- else }} []
    {{- end }}
  egress:
    {{- include "pitchin.dnsEgressRule" $root | nindent 4 }}
    {{- if include "pitchin.hasDatabase" $svc }}
    {{- include "pitchin.postgresqlEgressRule" $root | nindent 4 }}
    {{- end }}
    {{- with $egressRules }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
{{- end }}
