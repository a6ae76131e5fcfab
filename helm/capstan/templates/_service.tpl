{{/*
A Service in front of the pods carrying `capstan.io/<selectorLabel>: "true"`.
Usage: include "capstan.service" (dict "root" $ "component" "api" "values" .Values.service.api
         "selectorLabel" "gateway" "portName" "https" "targetPort" .Values.config.httpsPort)
*/}}
{{- define "capstan.service" -}}
{{- $root := .root -}}
{{- $v := .values -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "capstan.componentName" (dict "root" $root "component" .component) }}
  namespace: {{ $root.Release.Namespace | quote }}
  labels:
    {{- include "capstan.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  {{- $ann := merge (dict) ($v.annotations | default dict) ($root.Values.commonAnnotations | default dict) }}
  {{- with $ann }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $v.type }}
  {{- if and (eq $v.type "LoadBalancer") $v.loadBalancerIP }}
  loadBalancerIP: {{ $v.loadBalancerIP }}
  {{- end }}
  {{- if and (eq $v.type "LoadBalancer") $v.loadBalancerSourceRanges }}
  loadBalancerSourceRanges:
    {{- toYaml $v.loadBalancerSourceRanges | nindent 4 }}
  {{- end }}
  {{- if or (eq $v.type "LoadBalancer") (eq $v.type "NodePort") }}
  externalTrafficPolicy: {{ $v.externalTrafficPolicy }}
  {{- end }}
  ports:
    - name: {{ .portName }}
      port: {{ $v.port }}
      targetPort: {{ .portName }}
      protocol: TCP
      {{- if and (or (eq $v.type "NodePort") (eq $v.type "LoadBalancer")) $v.nodePort }}
      nodePort: {{ $v.nodePort }}
      {{- end }}
  selector:
    {{- include "capstan.selectorLabels" $root | nindent 4 }}
    capstan.io/{{ .selectorLabel }}: "true"
{{- end -}}
