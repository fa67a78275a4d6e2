{{/* The pods of a service: its settings (ConfigMap), ServiceAccount and Deployment. Each template
takes (dict "root" $ "svc" <a service from pitchin.services> "services" <all of them>). */}}

{{/* The service's settings (pitchin_core.settings.ServiceSettings and its subclasses), as YAML. */}}
{{- define "pitchin.service.env" -}}
{{- $root := .root }}
{{- $svc := .svc }}
{{- $env := dict
  "PITCHIN_SERVICE_NAME" $svc.name
  "PITCHIN_SERVICE_VERSION" (include "pitchin.imageTag" $root)
  "PITCHIN_ENVIRONMENT" $root.Values.environment
  "PITCHIN_HTTP_HOST" "0.0.0.0"
  "PITCHIN_HTTP_PORT" "8000"
  "PITCHIN_PUBLIC_BASE_URL" $root.Values.publicBaseUrl
  "PITCHIN_TRACE_SAMPLE_RATIO" (include "pitchin.str" $root.Values.otel.sampleRatio)
  "PITCHIN_LOG_LEVEL" $root.Values.logLevel
  "PITCHIN_WORKERS" (include "pitchin.str" ($svc.workers | default 1))
}}
{{- if include "pitchin.hasKafka" $svc }}
{{- $_ := set $env "PITCHIN_KAFKA_BOOTSTRAP" $root.Values.kafka.bootstrap }}
{{- $_ := set $env "PITCHIN_CONSUMER_HEARTBEAT_MS" (include "pitchin.str" $root.Values.kafka.consumerHeartbeatMs) }}
{{- $_ := set $env "PITCHIN_CREATE_TOPICS" "false" }}
{{- end }}
{{- if include "pitchin.hasDatabase" $svc }}
{{- $_ := set $env "PITCHIN_DATABASE_POOL_SIZE" (include "pitchin.str" $root.Values.database.poolSize) }}
{{- $_ := set $env "PITCHIN_MIGRATE_ON_START" "false" }}
{{- end }}
{{- range $svc.calls | default list }}
{{- $_ := set $env (printf "PITCHIN_%s_URL" (upper .)) (printf "http://%s:8000" (include "pitchin.serviceFullname" (list $root .))) }}
{{- end }}
{{- with $root.Values.otel.endpoint }}
{{- $_ := set $env "PITCHIN_OTLP_ENDPOINT" . }}
{{- end }}
{{- range $key, $value := $svc.env }}
{{- $_ := set $env $key (include "pitchin.str" $value) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{- define "pitchin.service.serviceAccount" }}
{{- $root := .root }}
{{- $name := .svc.name }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "pitchin.serviceFullname" (list $root $name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pitchin.serviceLabels" (list $root $name) | nindent 4 }}
# The services never call the Kubernetes API.
automountServiceAccountToken: false
{{- end }}

{{- define "pitchin.service.configMap" }}
{{- $root := .root }}
{{- $name := .svc.name }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "pitchin.serviceFullname" (list $root $name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pitchin.serviceLabels" (list $root $name) | nindent 4 }}
data:
  {{- include "pitchin.service.env" . | nindent 2 }}
{{- end }}

{{- define "pitchin.service.deployment" }}
{{- $root := .root }}
{{- $svc := .svc }}
{{- $name := $svc.name }}
{{- $fullname := include "pitchin.serviceFullname" (list $root $name) }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pitchin.serviceLabels" (list $root $name) | nindent 4 }}
spec:
  {{- if not $svc.autoscaling.enabled }}
  replicas: {{ $svc.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "pitchin.selectorLabels" (list $root $name) | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "pitchin.serviceLabels" (list $root $name) | nindent 8 }}
        {{- with $svc.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include "pitchin.service.env" . | sha256sum }}
        {{- with $svc.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $fullname }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      {{- with $svc.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "pitchin.podSecurityContext" $root | nindent 8 }}
      terminationGracePeriodSeconds: {{ $svc.terminationGracePeriodSeconds }}
      containers:
        - name: {{ $name }}
          image: {{ include "pitchin.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: ["python", "-m", {{ $svc.module | quote }}]
          ports:
            - name: http
              containerPort: 8000
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ $fullname }}
          env:
            {{- if include "pitchin.hasDatabase" $svc }}
            - name: PITCHIN_DATABASE_URL
              valueFrom:
                secretKeyRef:
                  name: {{ include "pitchin.databaseSecret" (list $root $svc) }}
                  key: {{ include "pitchin.databaseSecretKey" (list $root $svc) }}
            {{- end }}
            {{- if and (include "pitchin.hasKafka" $svc) $root.Values.kafka.users.enabled (eq $root.Values.kafka.users.authentication "scram-sha-512") }}
            # The service's own Kafka principal: its KafkaUser, whose Secret Strimzi's User
            # Operator writes (same name, key "password") in the namespace of the pods.
            - name: PITCHIN_KAFKA_USERNAME
              value: {{ $fullname | quote }}
            - name: PITCHIN_KAFKA_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ $fullname }}
                  key: password
            {{- end }}
            {{- range $envName, $ref := $svc.secretEnv }}
            - name: {{ $envName }}
              valueFrom:
                secretKeyRef:
                  name: {{ $ref.secretName | default $root.Values.secrets.existingSecret | required (printf "services.%s.secretEnv.%s needs a secretName or secrets.existingSecret" $name $envName) }}
                  key: {{ $ref.key }}
                  {{- if $ref.optional }}
                  optional: true
                  {{- end }}
            {{- end }}
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
            # Read by the OpenTelemetry SDK's resource detector: spans name their pod.
            - name: OTEL_RESOURCE_ATTRIBUTES
              value: "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),k8s.node.name=$(NODE_NAME),k8s.deployment.name={{ $fullname }},service.instance.id=$(POD_NAME)"
            {{- with $svc.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: {{ $root.Values.probes.startup.periodSeconds }}
            timeoutSeconds: {{ $root.Values.probes.startup.timeoutSeconds }}
            failureThreshold: {{ $root.Values.probes.startup.failureThreshold }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
            timeoutSeconds: {{ $root.Values.probes.liveness.timeoutSeconds }}
            failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
            timeoutSeconds: {{ $root.Values.probes.readiness.timeoutSeconds }}
            failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
          {{- if gt (int $svc.preStopSleepSeconds) 0 }}
          lifecycle:
            preStop:
              exec:
                command: ["sleep", {{ include "pitchin.str" $svc.preStopSleepSeconds | quote }}]
          {{- end }}
          resources:
            {{- toYaml $svc.resources | nindent 12 }}
          securityContext:
            {{- include "pitchin.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
      {{- if $svc.topologySpread.enabled }}
      topologySpreadConstraints:
        {{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
        - topologyKey: {{ . }}
          maxSkew: {{ $svc.topologySpread.maxSkew }}
          whenUnsatisfiable: {{ $svc.topologySpread.whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "pitchin.selectorLabels" (list $root $name) | nindent 14 }}
          matchLabelKeys:
            - pod-template-hash
        {{- end }}
      {{- end }}
      {{- with $svc.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
