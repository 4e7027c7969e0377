//! Small helpers: the clock, hashes in the controllers' style, canonical
//! JSON, uids, query-string decoding and JSON path access.

use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock, or a frozen one a test sets and moves by hand.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    /// `Some(unix seconds)` while frozen.
    frozen: Mutex<Option<i64>>,
}

impl Clock {
    /// Seconds since the Unix epoch, real or frozen.
    pub(crate) fn unix(&self) -> i64 {
        if let Some(t) = *lock(&self.frozen) {
            return t;
        }
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    /// Freeze the clock at `unix` seconds.
    pub(crate) fn freeze(&self, unix: i64) {
        *lock(&self.frozen) = Some(unix);
    }

    /// Move the clock by `secs` (freezing it at the current time first).
    pub(crate) fn advance(&self, secs: i64) {
        let now = self.unix();
        *lock(&self.frozen) = Some(now + secs);
    }

    /// RFC 3339 at second precision, as the API server writes `metav1.Time`.
    pub(crate) fn rfc3339(&self) -> String {
        rfc3339(self.unix())
    }
}

/// Lock a mutex, ignoring poisoning: a panicking test must not wedge the fake.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `2026-11-22T13:33:09Z` from Unix seconds (proleptic Gregorian, UTC).
pub(crate) fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// FNV-1a, 32 bit: the hash `controller.ComputeHash` feeds with the template.
pub(crate) fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// FNV-1, 32 bit: the hash `history.HashControllerRevision` uses on `data`.
pub(crate) fn fnv32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h = h.wrapping_mul(0x0100_0193);
        h ^= u32::from(*b);
    }
    h
}

/// The alphabet of `k8s.io/apimachinery/pkg/util/rand`: no vowels, no
/// look-alike characters.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `rand.SafeEncodeString`: each byte mapped into [`ALPHANUMS`]. Applied to
/// the decimal form of a hash, it gives names like `web-5dc764dd69`.
pub(crate) fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// A pod-template-hash style suffix: `safe_encode(decimal(fnv32a(...)))`.
pub(crate) fn template_hash(template: &Value, collision_count: i64) -> String {
    let mut text = canonical_json(template);
    if collision_count > 0 {
        text.push_str(&collision_count.to_string());
    }
    safe_encode(&fnv32a(text.as_bytes()).to_string())
}

/// JSON with object keys sorted and no whitespace, whatever serde_json's
/// map ordering feature says: the byte form hashes are taken of.
pub(crate) fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[*k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A random-looking but reproducible UUID (version 4 layout) from a seed and
/// a counter.
pub(crate) fn uid(seed: u64, counter: u64) -> String {
    let a = splitmix64(seed ^ counter.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let b = splitmix64(a ^ counter);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0x0fff) as u16,
        0x8000 | ((b >> 48) as u16 & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// `generateName` suffix: five characters of [`ALPHANUMS`].
pub(crate) fn name_suffix(seed: u64, counter: u64) -> String {
    let mut x = splitmix64(seed.rotate_left(17) ^ counter);
    (0..5)
        .map(|_| {
            let c = ALPHANUMS[(x % ALPHANUMS.len() as u64) as usize] as char;
            x /= ALPHANUMS.len() as u64;
            c
        })
        .collect()
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hex encoding, for opaque `continue` tokens.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Inverse of [`hex`].
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Decode one `application/x-www-form-urlencoded` component (`+` is a space).
pub(crate) fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse a query string into ordered (key, value) pairs; empty segments (kube
/// sends `?&watch=true`) are skipped.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (form_decode(k), form_decode(v)),
            None => (form_decode(pair), String::new()),
        })
        .collect()
}

/// `obj["a"]["b"]…` for a dotted path, `None` when any step is missing.
pub(crate) fn dig<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, k| v.get(*k))
}

/// A string at a dotted path, `""` when missing.
pub(crate) fn dig_str<'a>(obj: &'a Value, path: &[&str]) -> &'a str {
    dig(obj, path).and_then(Value::as_str).unwrap_or("")
}

/// The object at a path, created (as `{}`) where missing or not an object.
pub(crate) fn dig_mut<'a>(obj: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut cur = obj;
    for k in path {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        cur = cur
            .as_object_mut()
            .expect("just made an object")
            .entry(k.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    cur.as_object_mut().expect("just made an object")
}

/// An integer at a path (JSON number or numeric string), or `default`.
pub(crate) fn dig_i64(obj: &Value, path: &[&str], default: i64) -> i64 {
    match dig(obj, path) {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => s.parse().unwrap_or(default),
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_354_389), "2026-11-22T13:33:09Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn safe_encode_uses_the_real_alphabet_for_digits() {
        // Every hash suffix in the kubectl fixture is made of these ten.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn fnv_variants_match_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32(b"a"), 0x050c_5d7e);
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v = json!({"b": 1, "a": {"d": [1, "x"], "c": null}});
        assert_eq!(canonical_json(&v), r#"{"a":{"c":null,"d":[1,"x"]},"b":1}"#);
    }

    #[test]
    fn query_decoding_handles_kube_style_queries() {
        let q = parse_query("&watch=true&labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&x");
        assert_eq!(
            q,
            vec![
                ("watch".into(), "true".into()),
                ("labelSelector".into(), "app=web,tier in (a,b)".into()),
                ("x".into(), String::new()),
            ]
        );
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(b"12:shop/web")).unwrap(), b"12:shop/web");
        assert!(unhex("zz").is_none());
    }

    #[test]
    fn uids_are_uuid_shaped_and_distinct() {
        let a = uid(1, 1);
        let b = uid(1, 2);
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
