{{/* A service's ServiceMonitor (Prometheus Operator). Takes (dict "root" $ "svc" <a service from
pitchin.services> "services" <all of them>). */}}

{{- define "pitchin.service.serviceMonitor" }}
{{- $root := .root }}
{{- $name := .svc.name }}
{{- $monitor := $root.Values.monitoring.serviceMonitor }}
{{- if $monitor.enabled }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "pitchin.serviceFullname" (list $root $name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pitchin.serviceLabels" (list $root $name) | nindent 4 }}
    {{- with $monitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  # job="pitchin" for every service; `service` carries the service's name, as in the metrics'
  # own `service` label (honorLabels keeps the exported one), so rules and dashboards agree.
  jobLabel: app.kubernetes.io/part-of
  selector:
    matchLabels:
      {{- include "pitchin.selectorLabels" (list $root $name) | nindent 6 }}
  endpoints:
    - port: http
      path: /metrics
      interval: {{ $monitor.interval }}
      scrapeTimeout: {{ $monitor.scrapeTimeout }}
      honorLabels: true
      relabelings:
        - sourceLabels: [__meta_kubernetes_service_label_app_kubernetes_io_component]
          targetLabel: service
{{- end }}
{{- end }}
