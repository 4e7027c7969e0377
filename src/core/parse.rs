//! Parse: the Alertmanager webhook payload (version "4") into domain types.
//!
//! The wire structs mirror Alertmanager's JSON field names exactly
//! (`groupKey`, `truncatedAlerts`, `startsAt`, ...); they are turned into
//! [`Notification`] and [`Alert`] once, here, so later stages never see a
//! missing field or the zero `endsAt` of a firing alert.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A label or annotation set, sorted by name as Alertmanager prints them.
pub type LabelSet = BTreeMap<String, String>;

/// The only payload version Alertmanager has ever sent.
pub const SUPPORTED_VERSION: &str = "4";

/// Why a webhook body is not an Alertmanager notification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// The body is not JSON at all (syntax error or truncated input).
    #[error("malformed JSON at line {line} column {column}: {message}")]
    Malformed {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// JSON, but a required field is missing or has the wrong type.
    #[error("invalid payload: {0}")]
    Invalid(String),
    /// JSON with a `version` other than "4".
    #[error("unsupported payload version {found:?}: rollbackd understands version \"4\"")]
    UnsupportedVersion {
        /// The version the payload declared.
        found: String,
    },
}

/// Whether an alert (or a group) is still firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The alert condition holds.
    Firing,
    /// The alert condition stopped holding (`endsAt` is set).
    Resolved,
}

impl AlertStatus {
    /// The word Alertmanager uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One webhook notification from Alertmanager: a group of alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The receiver name from Alertmanager's route.
    pub receiver: String,
    /// Firing if at least one alert of the group fires.
    pub status: AlertStatus,
    /// Alertmanager's key for the group (stable across re-sends).
    pub group_key: String,
    /// Alerts dropped by Alertmanager's `max_alerts`.
    pub truncated_alerts: u64,
    /// Labels the group is formed by.
    pub group_labels: LabelSet,
    /// Labels all alerts share.
    pub common_labels: LabelSet,
    /// Annotations all alerts share.
    pub common_annotations: LabelSet,
    /// Alertmanager's own URL, for links back.
    pub external_url: String,
    /// Why this notification was sent (Alertmanager 0.32+), when given.
    pub notification_reason: Option<String>,
    /// Labels of the route that matched (Alertmanager 0.34+), when given.
    pub route_labels: Option<LabelSet>,
    /// The alerts, in Alertmanager's order.
    pub alerts: Vec<Alert>,
}

/// One alert of a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Identifying labels (`alertname`, `severity`, `namespace`, ...).
    pub labels: LabelSet,
    /// Informational annotations (`summary`, `rollback`, ...).
    pub annotations: LabelSet,
    /// When the alert started firing; with the fingerprint, the episode key.
    pub starts_at: Timestamp,
    /// When it resolved; `None` for a firing alert (Alertmanager's zero time).
    pub ends_at: Option<Timestamp>,
    /// Link to the expression in Prometheus.
    pub generator_url: String,
    /// Alertmanager's hash of the label set.
    pub fingerprint: String,
}

impl Alert {
    /// The alert's name (`alertname` label), or an empty string.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    /// The alert episode: one rollback at most per (fingerprint, startsAt).
    pub fn episode_key(&self) -> String {
        format!("{}@{}", self.fingerprint, self.starts_at)
    }
}

/// The payload exactly as Alertmanager sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePayload {
    // Any JSON value, so a numeric version is refused as a version.
    version: serde_json::Value,
    group_key: String,
    #[serde(default)]
    truncated_alerts: u64,
    status: AlertStatus,
    receiver: String,
    #[serde(default)]
    group_labels: LabelSet,
    #[serde(default)]
    common_labels: LabelSet,
    #[serde(default)]
    common_annotations: LabelSet,
    #[serde(default, rename = "externalURL")]
    external_url: String,
    // Alertmanager spells this one in snake case.
    #[serde(default, rename = "notification_reason")]
    notification_reason: Option<String>,
    #[serde(default)]
    route_labels: Option<LabelSet>,
    alerts: Vec<WireAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAlert {
    status: AlertStatus,
    labels: LabelSet,
    #[serde(default)]
    annotations: LabelSet,
    starts_at: Timestamp,
    #[serde(default)]
    ends_at: Option<Timestamp>,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
    fingerprint: String,
}

/// Only the version, read when a payload fails to parse.
#[derive(Deserialize)]
struct VersionProbe {
    version: Option<serde_json::Value>,
}

fn check_version(v: &serde_json::Value) -> Result<(), ParseError> {
    match v {
        serde_json::Value::String(v) if v == SUPPORTED_VERSION => Ok(()),
        serde_json::Value::String(v) => Err(ParseError::UnsupportedVersion { found: v.clone() }),
        other => Err(ParseError::UnsupportedVersion {
            found: other.to_string(),
        }),
    }
}

/// Parses a webhook body into a [`Notification`], in one pass; only a
/// body that fails is looked at again, to name the version it declares.
pub fn parse_notification(body: &[u8]) -> Result<Notification, ParseError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let wire: WirePayload = match serde_path_to_error::deserialize(&mut de) {
        Ok(wire) => wire,
        Err(e) => {
            // A future payload is refused for its version rather than for
            // whatever field it renamed.
            if let Ok(VersionProbe { version: Some(v) }) =
                serde_json::from_slice::<VersionProbe>(body)
            {
                check_version(&v)?;
            }
            let path = e.path().to_string();
            return Err(match json_error(e.into_inner()) {
                // Say where in the payload, not only where in the bytes.
                ParseError::Invalid(message) if path != "." => {
                    ParseError::Invalid(format!("{path}: {}", strip_position(&message)))
                }
                ParseError::Invalid(message) => ParseError::Invalid(strip_position(&message)),
                other => other,
            });
        }
    };
    check_version(&wire.version)?;
    Ok(Notification {
        receiver: wire.receiver,
        status: wire.status,
        group_key: wire.group_key,
        truncated_alerts: wire.truncated_alerts,
        group_labels: wire.group_labels,
        common_labels: wire.common_labels,
        common_annotations: wire.common_annotations,
        external_url: wire.external_url,
        notification_reason: wire.notification_reason,
        route_labels: wire.route_labels,
        alerts: wire.alerts.into_iter().map(Alert::from).collect(),
    })
}

impl From<WireAlert> for Alert {
    fn from(w: WireAlert) -> Self {
        // Alertmanager marks "not ended" with Go's zero time, year 1.
        let ends_at = w.ends_at.filter(|t| t.as_second() > ZERO_TIME_CUTOFF);
        Alert {
            status: w.status,
            labels: w.labels,
            annotations: w.annotations,
            starts_at: w.starts_at,
            ends_at,
            generator_url: w.generator_url,
            fingerprint: w.fingerprint,
        }
    }
}

/// Any `endsAt` before 1970 is Go's zero time (`0001-01-01T00:00:00Z`) or a
/// relative of it; no alert ended before the Unix epoch.
const ZERO_TIME_CUTOFF: i64 = 0;

fn json_error(e: serde_json::Error) -> ParseError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ParseError::Malformed {
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        },
        Category::Data => ParseError::Invalid(e.to_string()),
    }
}

/// serde_json appends " at line L column C"; the position is kept separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRING: &[u8] =
        include_bytes!("../../tests/fixtures/alertmanager-0.25-firing-group.json");
    const RESOLVED: &[u8] =
        include_bytes!("../../tests/fixtures/alertmanager-0.25-one-resolved.json");

    #[test]
    fn real_firing_group_parses_with_zero_ends_at_as_none() {
        let n = parse_notification(FIRING).unwrap();
        assert_eq!(n.receiver, "rollbackd");
        assert_eq!(n.group_key, "{}:{namespace=\"shop\"}");
        assert_eq!(n.external_url, "http://vm:19093");
        assert_eq!(n.alerts.len(), 4);
        let first = &n.alerts[0];
        assert_eq!(first.name(), "HighErrorRate");
        assert_eq!(first.status, AlertStatus::Firing);
        assert_eq!(first.ends_at, None);
        assert_eq!(first.fingerprint, "29cf3888210a5fcd");
        assert_eq!(first.starts_at.to_string(), "2026-11-22T12:50:41.011Z");
        assert_eq!(
            first.generator_url,
            "http://vm:19090/graph?g0.expr=vector%281%29&g0.tab=1"
        );
        assert_eq!(first.annotations["rollback"], "true");
    }

    #[test]
    fn resolved_alert_keeps_its_real_ends_at() {
        let n = parse_notification(RESOLVED).unwrap();
        assert_eq!(n.status, AlertStatus::Firing);
        let slow = &n.alerts[3];
        assert_eq!(slow.status, AlertStatus::Resolved);
        assert_eq!(
            slow.ends_at.map(|t| t.to_string()).as_deref(),
            Some("2026-11-22T12:51:43.011Z")
        );
    }

    #[test]
    fn newer_alertmanager_fields_and_unknown_fields_are_accepted() {
        let mut v: serde_json::Value = serde_json::from_slice(FIRING).unwrap();
        v["notification_reason"] = "repeat_interval".into();
        v["routeLabels"] = serde_json::json!({"team": "shop"});
        v["somethingNew"] = serde_json::json!([1, 2]);
        v["alerts"][0]["silenceURL"] = "x".into();
        let n = parse_notification(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(n.notification_reason.as_deref(), Some("repeat_interval"));
        assert_eq!(n.route_labels.unwrap()["team"], "shop");
    }

    #[test]
    fn malformed_json_says_where() {
        let err = parse_notification(b"{\n  \"version\": \"4\",\n  oops").unwrap_err();
        assert_eq!(
            err,
            ParseError::Malformed {
                line: 3,
                column: 3,
                message: "key must be a string".into()
            }
        );
    }

    #[test]
    fn wrong_version_and_missing_fields_are_named() {
        let mut v: serde_json::Value = serde_json::from_slice(FIRING).unwrap();
        v["version"] = "5".into();
        assert_eq!(
            parse_notification(&serde_json::to_vec(&v).unwrap()).unwrap_err(),
            ParseError::UnsupportedVersion { found: "5".into() }
        );
        let mut v: serde_json::Value = serde_json::from_slice(FIRING).unwrap();
        v["alerts"][1]
            .as_object_mut()
            .unwrap()
            .remove("fingerprint");
        let err = parse_notification(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(
            err,
            ParseError::Invalid("alerts[1]: missing field `fingerprint`".into())
        );
        let mut v: serde_json::Value = serde_json::from_slice(FIRING).unwrap();
        v.as_object_mut().unwrap().remove("version");
        assert_eq!(
            parse_notification(&serde_json::to_vec(&v).unwrap()).unwrap_err(),
            ParseError::Invalid("missing field `version`".into())
        );
    }
}
