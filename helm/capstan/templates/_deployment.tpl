{{/*
One Capstan Deployment. Every role runs the same image; CAPSTAN_SERVICES picks the services.
Pods that run `gateway` get the HTTPS port, TLS files and the label the API Service selects;
pods that run `tunnel` get the tunnel port and the label the tunnel Service selects, and the
internal data port, advertised at the pod IP, through which other pods reach their agents.
Usage: include "capstan.deployment" (dict "root" $ "component" "gateway" "values" .Values.gateway)
*/}}
{{- define "capstan.deployment" -}}
{{- $root := .root -}}
{{- include "capstan.validate" $root -}}
{{- $c := .component -}}
{{- $v := .values -}}
{{- $gw := include "capstan.runs" (dict "services" $v.services "name" "gateway") -}}
{{- $tun := include "capstan.runs" (dict "services" $v.services "name" "tunnel") -}}
{{- $tls := and $gw (include "capstan.tlsEnabled" $root) -}}
{{- $cfg := $root.Values.config -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "capstan.componentName" (dict "root" $root "component" $c) }}
  namespace: {{ $root.Release.Namespace | quote }}
  labels:
    {{- include "capstan.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $c }}
  {{- include "capstan.annotations" $root }}
spec:
  replicas: {{ $v.replicaCount }}
  revisionHistoryLimit: {{ $root.Values.revisionHistoryLimit }}
  {{- with $v.updateStrategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "capstan.selectorLabels" $root | nindent 6 }}
      app.kubernetes.io/component: {{ $c }}
  template:
    metadata:
      labels:
        {{- include "capstan.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ $c }}
        {{- if $gw }}
        capstan.io/gateway: "true"
        {{- end }}
        {{- if $tun }}
        capstan.io/tunnel: "true"
        {{- end }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
        {{- if $tls }}
        checksum/tls: {{ pick $root.Values.tls "existingSecret" "cert" "key" | toJson | sha256sum }}
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "capstan.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
      {{- with $root.Values.image.pullSecrets }}
      imagePullSecrets:
        {{- range . }}
        - name: {{ . }}
        {{- end }}
      {{- end }}
      {{- if $root.Values.podSecurityContext.enabled }}
      securityContext:
        {{- omit $root.Values.podSecurityContext "enabled" | toYaml | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- $affinity := include "capstan.affinity" (dict "root" $root "values" $v "component" $c) }}
      {{- if $affinity }}
      affinity:
        {{- $affinity | nindent 8 }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: capstan
          image: {{ include "capstan.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          {{- if $root.Values.containerSecurityContext.enabled }}
          securityContext:
            {{- omit $root.Values.containerSecurityContext "enabled" | toYaml | nindent 12 }}
          {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "capstan.fullname" $root }}
          env:
            - name: CAPSTAN_SERVICES
              value: {{ $v.services | nospace | quote }}
            - name: CAPSTAN_NODE_ID
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: CAPSTAN_TRANSPORTER
              valueFrom:
                secretKeyRef:
                  name: {{ include "capstan.secretName" $root }}
                  key: {{ $root.Values.existingSecretKeys.transporter }}
            - name: REDIS_URL
              valueFrom:
                secretKeyRef:
                  name: {{ include "capstan.secretName" $root }}
                  key: {{ $root.Values.existingSecretKeys.redisUrl }}
            - name: MONGODB_URL
              valueFrom:
                secretKeyRef:
                  name: {{ include "capstan.secretName" $root }}
                  key: {{ $root.Values.existingSecretKeys.mongodbUrl }}
            {{- if $tun }}
            # Gateways and snapshots in other pods connect to this pod's data listener at this address.
            - name: CAPSTAN_TUNNEL_DATA_ADVERTISE
              {{- if $cfg.tunnelDataAdvertise }}
              value: {{ $cfg.tunnelDataAdvertise | quote }}
              {{- else }}
              valueFrom:
                fieldRef:
                  fieldPath: status.podIP
              {{- end }}
            {{- end }}
            {{- if $tls }}
            - name: CAPSTAN_TLS_CERT
              value: /etc/capstan/tls/tls.crt
            - name: CAPSTAN_TLS_KEY
              value: /etc/capstan/tls/tls.key
            {{- end }}
            {{- with $cfg.extraEnvVars }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $v.extraEnvVars }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- if or $gw $tun }}
          ports:
            {{- if $gw }}
            - name: https
              containerPort: {{ $cfg.httpsPort }}
              protocol: TCP
            {{- end }}
            {{- if $tun }}
            - name: tunnel
              containerPort: {{ $cfg.tunnelPort }}
              protocol: TCP
            - name: tunnel-data
              containerPort: {{ $cfg.tunnelDataPort }}
              protocol: TCP
            {{- end }}
          {{- end }}
          {{- if $gw }}
          {{- if and $v.startupProbe $v.startupProbe.enabled }}
          startupProbe:
            tcpSocket:
              port: https
            periodSeconds: {{ $v.startupProbe.periodSeconds }}
            failureThreshold: {{ $v.startupProbe.failureThreshold }}
          {{- end }}
          {{- if and $v.readinessProbe $v.readinessProbe.enabled }}
          readinessProbe:
            httpGet:
              path: /api/system/status
              port: https
              scheme: HTTPS
            periodSeconds: {{ $v.readinessProbe.periodSeconds }}
            timeoutSeconds: {{ $v.readinessProbe.timeoutSeconds }}
            failureThreshold: {{ $v.readinessProbe.failureThreshold }}
          {{- end }}
          {{- if and $v.livenessProbe $v.livenessProbe.enabled }}
          livenessProbe:
            tcpSocket:
              port: https
            periodSeconds: {{ $v.livenessProbe.periodSeconds }}
            timeoutSeconds: {{ $v.livenessProbe.timeoutSeconds }}
            failureThreshold: {{ $v.livenessProbe.failureThreshold }}
          {{- end }}
          {{- else if $tun }}
          {{- if and $v.readinessProbe $v.readinessProbe.enabled }}
          readinessProbe:
            httpGet:
              path: /health
              port: tunnel
            periodSeconds: {{ $v.readinessProbe.periodSeconds }}
            timeoutSeconds: {{ $v.readinessProbe.timeoutSeconds }}
            failureThreshold: {{ $v.readinessProbe.failureThreshold }}
          {{- end }}
          {{- if and $v.livenessProbe $v.livenessProbe.enabled }}
          livenessProbe:
            httpGet:
              path: /health
              port: tunnel
            initialDelaySeconds: {{ $v.livenessProbe.initialDelaySeconds }}
            periodSeconds: {{ $v.livenessProbe.periodSeconds }}
            timeoutSeconds: {{ $v.livenessProbe.timeoutSeconds }}
            failureThreshold: {{ $v.livenessProbe.failureThreshold }}
          {{- end }}
          {{- end }}
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: data
              mountPath: /data
            - name: tmp
              mountPath: /tmp
            {{- if $tls }}
            - name: tls
              mountPath: /etc/capstan/tls
              readOnly: true
            {{- end }}
      volumes:
        - name: data
          {{- if and $v.persistence $v.persistence.enabled }}
          persistentVolumeClaim:
            claimName: {{ $v.persistence.existingClaim | default (include "capstan.componentName" (dict "root" $root "component" $c)) }}
          {{- else }}
          emptyDir: {}
          {{- end }}
        - name: tmp
          emptyDir: {}
        {{- if $tls }}
        - name: tls
          secret:
            secretName: {{ include "capstan.tlsSecretName" $root }}
            defaultMode: 0440
        {{- end }}
{{- end -}}
