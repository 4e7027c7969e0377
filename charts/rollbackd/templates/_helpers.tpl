{{/* Chart name. */}}
{{- define "rollbackd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: RELEASE-rollbackd unless the release name already contains it. */}}
{{- define "rollbackd.fullname" -}}
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

{{- define "rollbackd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rollbackd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rollbackd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rollbackd.labels" -}}
helm.sh/chart: {{ include "rollbackd.chart" . }}
{{ include "rollbackd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rollbackd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rollbackd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rollbackd.rulesConfigMap" -}}
{{- default (printf "%s-rules" (include "rollbackd.fullname" .)) .Values.rules.existingConfigMap }}
{{- end }}

{{/*
Credentials, as a list of dicts: env (the *_FILE variable), file (name under
/etc/rollbackd/secrets), value, existingSecret, key. Only those configured
(value or existingSecret) are listed; the generated webhook token is listed
when no webhook credential is given and generation is on.
*/}}
{{- define "rollbackd.credentials" -}}
{{- $v := .Values }}
{{- $all := list
  (dict "env" "ROLLBACKD_WEBHOOK_TOKEN_FILE" "file" "webhook-token" "c" $v.webhook.token)
  (dict "env" "ROLLBACKD_WEBHOOK_PASSWORD_FILE" "file" "webhook-password" "c" $v.webhook.basicAuth.password)
  (dict "env" "ROLLBACKD_OPERATOR_TOKEN_FILE" "file" "operator-token" "c" $v.operator.token)
  (dict "env" "ROLLBACKD_SLACK_WEBHOOK_URL_FILE" "file" "slack-webhook-url" "c" $v.slack.webhookUrl)
  (dict "env" "ROLLBACKD_SLACK_BOT_TOKEN_FILE" "file" "slack-bot-token" "c" $v.slack.botToken)
}}
{{- $out := list }}
{{- range $all }}
{{- if and .c.value .c.existingSecret }}
{{- fail (printf "%s: set value or existingSecret, not both" .file) }}
{{- end }}
{{- if or .c.value .c.existingSecret }}
{{- $out = append $out (dict "env" .env "file" .file "value" (.c.value | default "") "existingSecret" (.c.existingSecret | default "") "key" .c.key) }}
{{- end }}
{{- end }}
{{- if eq (include "rollbackd.generateWebhookToken" .) "true" }}
{{- $out = append $out (dict "env" "ROLLBACKD_WEBHOOK_TOKEN_FILE" "file" "webhook-token" "value" "" "existingSecret" "" "key" "" "generated" true) }}
{{- end }}
{{- toJson (dict "items" $out) }}
{{- end }}

{{/* "true" when the chart must generate a webhook token. */}}
{{- define "rollbackd.generateWebhookToken" -}}
{{- $w := .Values.webhook }}
{{- $has := or $w.token.value $w.token.existingSecret $w.basicAuth.username }}
{{- if and (not $has) $w.token.generate (not $w.insecureNoAuth) }}true{{ else }}false{{ end }}
{{- end }}

{{/* The Secret this chart creates for credentials given as values. */}}
{{- define "rollbackd.secretName" -}}
{{- printf "%s-credentials" (include "rollbackd.fullname" .) }}
{{- end }}

{{/* Checks of combinations the service would refuse at start-up. */}}
{{- define "rollbackd.validate" -}}
{{- $v := .Values }}
{{- $w := $v.webhook }}
{{- if and $w.basicAuth.username (not (or $w.basicAuth.password.value $w.basicAuth.password.existingSecret)) }}
{{- fail "webhook.basicAuth.username needs webhook.basicAuth.password.value or .existingSecret" }}
{{- end }}
{{- if and (or $w.basicAuth.password.value $w.basicAuth.password.existingSecret) (not $w.basicAuth.username) }}
{{- fail "webhook.basicAuth.password needs webhook.basicAuth.username" }}
{{- end }}
{{- if and (not (or $w.token.value $w.token.existingSecret $w.basicAuth.username $w.token.generate)) (not $w.insecureNoAuth) }}
{{- fail "no webhook credentials: set webhook.token (value or existingSecret), webhook.basicAuth, webhook.token.generate=true, or webhook.insecureNoAuth=true (rollbackd refuses to start otherwise)" }}
{{- end }}
{{- $hasUrl := or $v.slack.webhookUrl.value $v.slack.webhookUrl.existingSecret }}
{{- $hasBot := or $v.slack.botToken.value $v.slack.botToken.existingSecret }}
{{- if and $hasUrl $hasBot }}
{{- fail "slack: set webhookUrl or botToken, not both" }}
{{- end }}
{{- if and $hasBot (not $v.slack.channel) }}
{{- fail "slack.botToken needs slack.channel" }}
{{- end }}
{{- if and $v.slack.channel (not $hasBot) }}
{{- fail "slack.channel is only used with slack.botToken (an incoming webhook has its own channel)" }}
{{- end }}
{{- if and (eq $v.rbac.scope "namespaces") $v.rbac.create (not $v.rbac.namespaces) }}
{{- fail "rbac.scope=namespaces needs rbac.namespaces" }}
{{- end }}
{{- end }}
