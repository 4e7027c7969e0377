//! Fuzzes `parse_notification`, the parser behind `POST /webhook`, with
//! arbitrary bytes.
//!
//! Checked for every input:
//! - it never panics, and its error prints (`ParseError`'s `Display`);
//! - it is deterministic: the journal stores the raw body and parses it
//!   again when the worker, the events API or a replay reads it, trusting
//!   that a body accepted once parses again to the same value;
//! - an accepted notification, written back in Alertmanager's wire format
//!   (camelCase names, version "4", Go's zero time for a firing alert's
//!   `endsAt`), parses to the same value: nothing accepted is lost or
//!   changed on the way in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollbackd::core::parse::{parse_notification, Alert, Notification};
use serde_json::{json, Value};

fuzz_target!(|body: &[u8]| {
    let first = parse_notification(body);
    let again = parse_notification(body);
    assert_eq!(first, again, "parsing the same body twice differs");
    match first {
        Err(e) => {
            let _ = e.to_string();
        }
        Ok(n) => {
            let wire = serde_json::to_vec(&to_wire(&n)).expect("a notification serialises");
            let reparsed = parse_notification(&wire).unwrap_or_else(|e| {
                panic!(
                    "an accepted notification, written back, is refused: {e}\n{}",
                    String::from_utf8_lossy(&wire)
                )
            });
            assert_eq!(
                n, reparsed,
                "an accepted notification changes when written back"
            );
        }
    }
});

/// The notification as Alertmanager would have sent it.
fn to_wire(n: &Notification) -> Value {
    let mut v = json!({
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": n.truncated_alerts,
        "status": n.status,
        "receiver": n.receiver,
        "groupLabels": n.group_labels,
        "commonLabels": n.common_labels,
        "commonAnnotations": n.common_annotations,
        "externalURL": n.external_url,
        "alerts": n.alerts.iter().map(alert_to_wire).collect::<Vec<_>>(),
    });
    if let Some(reason) = &n.notification_reason {
        v["notification_reason"] = json!(reason);
    }
    if let Some(labels) = &n.route_labels {
        v["routeLabels"] = json!(labels);
    }
    v
}

fn alert_to_wire(a: &Alert) -> Value {
    json!({
        "status": a.status,
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": a.starts_at,
        // Alertmanager's "not ended": Go's zero time.
        "endsAt": a.ends_at.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), |t| t.to_string()),
        "generatorURL": a.generator_url,
        "fingerprint": a.fingerprint,
    })
}
