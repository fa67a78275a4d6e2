{{/* How a service is reached: its Service and, when enabled, its Ingress. Each template takes
(dict "root" $ "svc" <a service from pitchin.services> "services" <all of them>). */}}

{{- define "pitchin.service.service" }}
{{- $root := .root }}
{{- $name := .svc.name }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "pitchin.serviceFullname" (list $root $name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pitchin.serviceLabels" (list $root $name) | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "pitchin.selectorLabels" (list $root $name) | nindent 4 }}
  ports:
    - name: http
      port: 8000
      targetPort: http
      protocol: TCP
{{- end }}

{{- define "pitchin.service.ingress" }}
{{- $root := .root }}
{{- $name := .svc.name }}
{{- $ingress := .svc.ingress }}
{{- $fullname := include "pitchin.serviceFullname" (list $root $name) }}
{{- if $ingress.enabled }}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ $fullname }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pitchin.serviceLabels" (list $root $name) | nindent 4 }}
  {{- with $ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with $ingress.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- with $ingress.tlsSecretName }}
  tls:
    - hosts: [{{ $ingress.host | quote }}]
      secretName: {{ . }}
  {{- end }}
  rules:
    - host: {{ required (printf "services.%s.ingress.host is required when its ingress is enabled" $name) $ingress.host | quote }}
      http:
        paths:
          {{- range $ingress.paths }}
          - path: {{ . }}
            pathType: Prefix
            backend:
              service:
                name: {{ $fullname }}
                port:
                  name: http
          {{- end }}
{{- end }}
{{- end }}
