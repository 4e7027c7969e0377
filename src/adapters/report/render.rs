//! Render: an incident into the Block Kit body Slack receives.
//!
//! Layout, top to bottom: a header (emoji, alert name, stage); the step and
//! why; fields (severity, alert status, rule, decision, workload, time to
//! rollback against the deadline); revision from → to with each side's
//! images; one section per note; links (Prometheus, Alertmanager, a
//! pre-filled silence); a context line (start time, episode). Every text is
//! escaped for mrkdwn and cut to Slack's limits, the cut marked with
//! [`TRUNCATED`]; notes beyond the block limit are counted, not dropped
//! silently. The `text` fallback is what notifications and old clients show.

use serde_json::{json, Value};

use super::Incident;
use crate::core::parse::{AlertStatus, LabelSet};

/// Most blocks Slack accepts in one message.
pub const MAX_BLOCKS: usize = 50;
/// Most characters in a section's text (and in the `text` fallback we send).
pub const MAX_SECTION_CHARS: usize = 3000;
/// Most characters in a header's plain text.
pub const MAX_HEADER_CHARS: usize = 150;
/// Most characters in one field of a section.
pub const MAX_FIELD_CHARS: usize = 2000;
/// What replaces the end of a text cut to fit.
pub const TRUNCATED: &str = "…(truncated)";

/// Budgets inside the step section (sum + markup < 3000): the step's detail
/// gets the most room, it is what changes from report to report.
const DETAIL_CHARS: usize = 1500;
const REASON_CHARS: usize = 600;
const SUMMARY_CHARS: usize = 700;
/// Each side's image list in the revision section (two sides + markup <
/// 3000).
const IMAGES_CHARS: usize = 1400;
/// Field values leave room for the field's bold title.
const FIELD_VALUE_CHARS: usize = MAX_FIELD_CHARS - 100;
/// A link longer than this is left out rather than cut (a cut URL is a
/// broken link); three of them still fit one section.
const MAX_LINK_CHARS: usize = 950;
/// The episode key in the context line (fingerprint@timestamp is ~37).
const KEY_CHARS: usize = 200;

/// The Block Kit message for `incident`: `{"text": fallback, "blocks": [...]}`.
/// Transports add `channel`, `ts` and unfurl settings around it.
pub fn render(incident: &Incident) -> Value {
    let mut head = vec![header(incident), step_section(incident), fields(incident)];
    head.extend(revision_section(incident));
    let mut tail: Vec<Value> = links_section(incident).into_iter().collect();
    tail.push(context(incident));

    let room = MAX_BLOCKS - head.len() - tail.len();
    let mut blocks = head;
    if incident.notes.len() <= room {
        blocks.extend(incident.notes.iter().map(|n| note_section(n)));
    } else {
        let kept = room - 1;
        blocks.extend(incident.notes[..kept].iter().map(|n| note_section(n)));
        blocks.push(section(format!(
            "{TRUNCATED} {} more notes not shown",
            incident.notes.len() - kept
        )));
    }
    blocks.extend(tail);
    json!({ "text": fallback(incident), "blocks": blocks })
}

/// Alertmanager's "new silence" page pre-filled with the alert's labels as
/// matchers, as its UI links it: `{externalURL}/#/silences/new?filter=`
/// followed by `{name="value", ...}`, percent-encoded.
pub fn silence_url(external_url: &str, labels: &LabelSet) -> String {
    let matchers: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}=\"{}\"", matcher_value(value)))
        .collect();
    let filter = format!("{{{}}}", matchers.join(", "));
    format!(
        "{}/#/silences/new?filter={}",
        external_url.trim_end_matches('/'),
        percent_encode(&filter)
    )
}

fn header(incident: &Incident) -> Value {
    let name = if incident.alertname.is_empty() {
        "(unnamed alert)"
    } else {
        &incident.alertname
    };
    let prefix = format!("{} ", incident.stage.emoji());
    let suffix = format!(" — {}", incident.stage.label());
    let room = MAX_HEADER_CHARS - prefix.chars().count() - suffix.chars().count();
    let text = format!("{prefix}{}{suffix}", clip_plain(name, room));
    json!({
        "type": "header",
        "text": { "type": "plain_text", "text": text, "emoji": true }
    })
}

fn step_section(incident: &Incident) -> Value {
    let mut text = format!("*{}*", escape(incident.stage.label()));
    if !incident.detail.is_empty() {
        text.push_str(": ");
        text.push_str(&clip(&incident.detail, DETAIL_CHARS));
    }
    if !incident.reason.is_empty() {
        text.push_str("\n*Why:* ");
        text.push_str(&clip(&incident.reason, REASON_CHARS));
    }
    if let Some(summary) = incident.summary.as_deref().filter(|s| !s.is_empty()) {
        text.push_str("\n*Summary:* ");
        text.push_str(&clip(summary, SUMMARY_CHARS));
    }
    section(text)
}

fn fields(incident: &Incident) -> Value {
    let mut fields = vec![
        field(
            "Severity",
            &clip(
                incident.severity.as_deref().unwrap_or("none"),
                FIELD_VALUE_CHARS,
            ),
        ),
        field(
            "Alert",
            match incident.alert_status {
                AlertStatus::Firing => "firing",
                AlertStatus::Resolved => "resolved",
            },
        ),
        field(
            "Rule",
            &match &incident.rule {
                Some(rule) => format!("`{}`", clip(rule, FIELD_VALUE_CHARS)),
                None => "no rule matched".into(),
            },
        ),
        field("Decision", incident.decision.as_str()),
        field(
            "Workload",
            &match &incident.target {
                Some(target) => format!("`{}`", clip(&target.to_string(), FIELD_VALUE_CHARS)),
                None => "none (no target labels)".into(),
            },
        ),
    ];
    if let Some(timing) = timing(incident) {
        fields.push(field("Time to rollback", &timing));
    }
    json!({ "type": "section", "fields": fields })
}

/// "12.4 s, deadline 30 s: met", or the deadline alone before the rollback.
fn timing(incident: &Incident) -> Option<String> {
    match (incident.time_to_rollback_secs, incident.deadline_secs) {
        (Some(took), Some(deadline)) => {
            let verdict = if incident.deadline_met() == Some(true) {
                "met :white_check_mark:"
            } else {
                "missed :alarm_clock:"
            };
            Some(format!(
                "{}, deadline {}: {verdict}",
                duration(took),
                duration(deadline as f64)
            ))
        }
        (None, Some(deadline)) => Some(format!("deadline {}", duration(deadline as f64))),
        (Some(took), None) => Some(duration(took)),
        (None, None) => None,
    }
}

fn revision_section(incident: &Incident) -> Option<Value> {
    let i = incident;
    if i.from_revision.is_none()
        && i.to_revision.is_none()
        && i.from_images.is_empty()
        && i.to_images.is_empty()
    {
        return None;
    }
    let revision = |r: Option<i64>| r.map_or_else(|| "?".to_string(), |r| r.to_string());
    let mut text = format!(
        "*Revision* {} → {}",
        revision(i.from_revision),
        revision(i.to_revision)
    );
    for (side, images) in [("from", &i.from_images), ("to", &i.to_images)] {
        if !images.is_empty() {
            text.push_str(&format!("\n*{side}* {}", image_list(images)));
        }
    }
    Some(section(text))
}

/// `` `a`, `b` `` within [`IMAGES_CHARS`]; images that do not fit are
/// counted.
fn image_list(images: &[String]) -> String {
    let mut out = String::new();
    for (n, image) in images.iter().enumerate() {
        let item = format!("`{}`", clip(image, IMAGES_CHARS / 2));
        let sep = if n == 0 { "" } else { ", " };
        let rest = images.len() - n;
        // Leave room for the "…(truncated) N more" marker.
        if out.chars().count() + sep.len() + item.chars().count() + 40 > IMAGES_CHARS {
            out.push_str(&format!("{sep}{TRUNCATED} {rest} more"));
            break;
        }
        out.push_str(sep);
        out.push_str(&item);
    }
    out
}

fn note_section(note: &str) -> Value {
    section(format!(
        ":memo: {}",
        clip(note, MAX_SECTION_CHARS - ":memo: ".len())
    ))
}

fn links_section(incident: &Incident) -> Option<Value> {
    let external = incident.external_url.trim_end_matches('/');
    let mut links = Vec::new();
    if !incident.generator_url.is_empty() {
        links.push(link(&incident.generator_url, "Prometheus"));
    }
    if !external.is_empty() {
        links.push(link(external, "Alertmanager"));
        if !incident.labels.is_empty() {
            links.push(link(
                &silence_url(external, &incident.labels),
                ":no_bell: Silence",
            ));
        }
    }
    if links.is_empty() {
        return None;
    }
    Some(section(links.join("  ·  ")))
}

/// `<url|label>`, or the label with a remark when the URL is too long to
/// link.
fn link(url: &str, label: &str) -> String {
    let url = link_url(url);
    if url.chars().count() > MAX_LINK_CHARS {
        return format!("{label} (link too long for Slack)");
    }
    format!("<{url}|{label}>")
}

fn context(incident: &Incident) -> Value {
    let started = incident.starts_at.strftime("%Y-%m-%d %H:%M:%S UTC");
    let text = format!(
        "Alert started {started}  ·  episode `{}`",
        clip(&incident.key, KEY_CHARS)
    );
    json!({
        "type": "context",
        "elements": [ { "type": "mrkdwn", "text": text } ]
    })
}

/// The plain `text`: what a notification or a client without blocks shows.
fn fallback(incident: &Incident) -> String {
    let workload = incident
        .target
        .as_ref()
        .map_or_else(|| "no workload".to_string(), |t| t.to_string());
    let mut text = format!(
        "{} {}: {} ({workload})",
        incident.stage.emoji(),
        if incident.alertname.is_empty() {
            "(unnamed alert)"
        } else {
            &incident.alertname
        },
        incident.stage.label()
    );
    if !incident.detail.is_empty() {
        text.push_str(" — ");
        text.push_str(&incident.detail);
    }
    clip(&text, MAX_SECTION_CHARS)
}

fn section(text: String) -> Value {
    debug_assert!(text.chars().count() <= MAX_SECTION_CHARS, "{text}");
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

fn field(title: &str, value: &str) -> Value {
    json!({ "type": "mrkdwn", "text": format!("*{title}*\n{value}") })
}

/// Escapes mrkdwn's control characters, as Slack asks: `&`, `<`, `>`.
fn escape(text: &str) -> String {
    clip(text, usize::MAX)
}

fn escape_char(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        _ => None,
    }
}

/// `text` escaped for mrkdwn, at most `max` characters once escaped; a cut
/// ends with [`TRUNCATED`] and never splits an escape.
fn clip(text: &str, max: usize) -> String {
    let escaped_len: usize = text
        .chars()
        .map(|c| escape_char(c).map_or(1, str::len))
        .sum();
    let budget = if escaped_len <= max {
        usize::MAX
    } else {
        max - TRUNCATED.chars().count()
    };
    let mut out = String::with_capacity(text.len().min(max));
    let mut used = 0;
    for c in text.chars() {
        let piece_len = escape_char(c).map_or(1, str::len);
        if used + piece_len > budget {
            out.push_str(TRUNCATED);
            return out;
        }
        match escape_char(c) {
            Some(e) => out.push_str(e),
            None => out.push(c),
        }
        used += piece_len;
    }
    out
}

/// Plain text (headers) at most `max` characters, a cut marked.
fn clip_plain(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max - TRUNCATED.chars().count()).collect();
    format!("{kept}{TRUNCATED}")
}

/// A URL inside `<url|label>`: mrkdwn's control characters escaped, and `|`
/// percent-encoded (it would end the URL).
fn link_url(url: &str) -> String {
    escape(url).replace('|', "%7C")
}

/// A label value inside a matcher's double quotes, escaped as Alertmanager
/// parses it.
fn matcher_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as
/// `encodeURIComponent` does (and Alertmanager's UI expects).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `30 s`, `12.4 s`, `5 min`, `2 min 5 s`, `1 h 30 min`.
fn duration(secs: f64) -> String {
    if secs < 60.0 {
        let tenths = (secs * 10.0).round() / 10.0;
        return if tenths.fract() == 0.0 {
            format!("{tenths:.0} s")
        } else {
            format!("{tenths:.1} s")
        };
    }
    let whole = secs.round() as u64;
    let (h, m, s) = (whole / 3600, whole % 3600 / 60, whole % 60);
    match (h, m, s) {
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::report::Stage;
    use crate::core::decide::{Target, WorkloadKind};
    use crate::core::rules::DecisionKind;

    fn incident() -> Incident {
        Incident {
            key: "6e7a3f1c2b9d0e45@2026-11-22T12:50:00Z".into(),
            alertname: "WebDown".into(),
            severity: Some("critical".into()),
            alert_status: AlertStatus::Firing,
            summary: Some("web answers 5xx".into()),
            labels: [("alertname", "WebDown"), ("namespace", "shop")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            rule: Some("service-down".into()),
            decision: DecisionKind::Rollback,
            reason: "rule service-down matched".into(),
            target: Some(Target {
                namespace: "shop".into(),
                kind: WorkloadKind::Deployment,
                name: "web".into(),
                to_revision: None,
            }),
            stage: Stage::Healthy,
            detail: "rollout finished".into(),
            from_revision: Some(5),
            to_revision: Some(4),
            from_images: vec!["registry.example/web:1.4.0".into()],
            to_images: vec!["registry.example/web:1.3.2".into()],
            deadline_secs: Some(30),
            time_to_rollback_secs: Some(12.4),
            starts_at: "2026-11-22T12:50:00Z".parse().unwrap(),
            generator_url: "http://prometheus:9090/graph?g0.expr=up&g0.tab=1".into(),
            external_url: "http://alertmanager:9093/".into(),
            channel: None,
            notes: vec![],
        }
    }

    fn texts(message: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for block in message["blocks"].as_array().unwrap() {
            if let Some(t) = block["text"]["text"].as_str() {
                out.push(t.to_string());
            }
            for f in block["fields"].as_array().into_iter().flatten() {
                out.push(f["text"].as_str().unwrap().to_string());
            }
            for e in block["elements"].as_array().into_iter().flatten() {
                out.push(e["text"].as_str().unwrap().to_string());
            }
        }
        out
    }

    #[test]
    fn silence_link_prefills_every_label_as_alertmanagers_ui_encodes_it() {
        let labels: LabelSet = [("alertname", "WebDown"), ("namespace", "shop")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            silence_url("http://am:9093/", &labels),
            "http://am:9093/#/silences/new?filter=\
             %7Balertname%3D%22WebDown%22%2C%20namespace%3D%22shop%22%7D"
        );
        let tricky: LabelSet = [("path".to_string(), "a\"b\\c d/é".to_string())].into();
        assert_eq!(
            silence_url("http://am", &tricky),
            "http://am/#/silences/new?filter=%7Bpath%3D%22a%5C%22b%5C%5Cc%20d%2F%C3%A9%22%7D"
        );
    }

    #[test]
    fn deadline_is_reported_met_or_missed() {
        let mut i = incident();
        assert_eq!(
            timing(&i).unwrap(),
            "12.4 s, deadline 30 s: met :white_check_mark:"
        );
        i.time_to_rollback_secs = Some(95.0);
        assert_eq!(
            timing(&i).unwrap(),
            "1 min 35 s, deadline 30 s: missed :alarm_clock:"
        );
        i.time_to_rollback_secs = None;
        i.deadline_secs = Some(300);
        assert_eq!(timing(&i).unwrap(), "deadline 5 min");
    }

    #[test]
    fn a_rollout_that_never_got_healthy_missed_its_deadline_however_soon_it_ended() {
        // The deadline runs from the alert's start to a healthy rollout.
        let mut i = incident();
        i.stage = Stage::Stalled;
        assert_eq!(i.deadline_met(), Some(false));
        assert_eq!(
            timing(&i).unwrap(),
            "12.4 s, deadline 30 s: missed :alarm_clock:"
        );
        i.stage = Stage::Healthy;
        assert_eq!(i.deadline_met(), Some(true));
        i.time_to_rollback_secs = None;
        assert_eq!(i.deadline_met(), None, "not judged before the end");
    }

    #[test]
    fn user_text_is_escaped_so_it_cannot_inject_links_or_mentions() {
        let mut i = incident();
        i.detail = "<!channel> & <http://evil|click>".into();
        let all = texts(&render(&i)).join("\n");
        assert!(
            all.contains("&lt;!channel&gt; &amp; &lt;http://evil|click&gt;"),
            "{all}"
        );
        assert!(!all.contains("<!channel>"));
    }

    #[test]
    fn links_escape_ampersands_and_pipes() {
        let mut i = incident();
        i.generator_url = "http://p/graph?a=1&b=x|y".into();
        let all = texts(&render(&i)).join("\n");
        assert!(
            all.contains("<http://p/graph?a=1&amp;b=x%7Cy|Prometheus>"),
            "{all}"
        );
    }

    #[test]
    fn a_cut_never_splits_an_escape_and_is_marked() {
        let cut = clip("a&&&&&&&&&&&&&&&&&&&&&&&", 20);
        assert!(cut.chars().count() <= 20, "{cut}");
        assert_eq!(cut, format!("a&amp;{TRUNCATED}"));
        assert_eq!(clip("short & fine", 20), "short &amp; fine");
    }

    #[test]
    fn oversized_incident_stays_within_slacks_limits_with_the_cut_marked() {
        let mut i = incident();
        i.alertname = "A".repeat(400);
        i.detail = "d".repeat(10_000);
        i.reason = "r".repeat(5_000);
        i.summary = Some("<&>".repeat(2_000));
        i.notes = (0..80)
            .map(|n| format!("note {n} {}", "n".repeat(4000)))
            .collect();
        i.from_images = (0..100)
            .map(|n| format!("registry/img{n}:{}", "t".repeat(50)))
            .collect();
        i.to_images = i.from_images.clone();
        let message = render(&i);
        let blocks = message["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), MAX_BLOCKS);
        let header = blocks[0]["text"]["text"].as_str().unwrap();
        assert!(header.chars().count() <= MAX_HEADER_CHARS, "{header}");
        assert!(header.contains(TRUNCATED));
        for block in blocks {
            if let Some(t) = block["text"]["text"].as_str() {
                assert!(t.chars().count() <= MAX_SECTION_CHARS);
            }
            for f in block["fields"].as_array().into_iter().flatten() {
                assert!(f["text"].as_str().unwrap().chars().count() <= MAX_FIELD_CHARS);
            }
        }
        let all = texts(&message).join("\n");
        assert!(
            all.contains(&format!("{TRUNCATED} 37 more notes not shown")),
            "{all}"
        );
        // The links and the context survive the cut, at the end.
        assert!(blocks[48]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("|Prometheus>"));
        assert_eq!(blocks[49]["type"], "context");
        assert!(message["text"].as_str().unwrap().chars().count() <= MAX_SECTION_CHARS);
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(30.0), "30 s");
        assert_eq!(duration(0.04), "0 s");
        assert_eq!(duration(12.44), "12.4 s");
        assert_eq!(duration(60.0), "1 min");
        assert_eq!(duration(125.0), "2 min 5 s");
        assert_eq!(duration(5400.0), "1 h 30 min");
    }
}
