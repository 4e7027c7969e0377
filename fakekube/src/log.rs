//! The request log and the matchers that fault injection and hooks use.

use serde_json::Value;

/// One HTTP request the fake received, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Position in arrival order, from 0.
    pub seq: usize,
    /// HTTP method (`GET`, `PATCH`, …).
    pub method: String,
    /// Kubernetes verb: `get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`, or `discovery` / `other`.
    pub verb: String,
    /// URL path.
    pub path: String,
    /// Raw query string (without `?`), `""` when none.
    pub query: String,
    /// Decoded query parameters, in order.
    pub params: Vec<(String, String)>,
    /// `Content-Type` header, if sent.
    pub content_type: Option<String>,
    /// The body parsed as JSON, when it is JSON.
    pub body: Option<Value>,
    /// The body as text (lossy UTF-8), `""` when empty.
    pub body_text: String,
    /// `fieldManager` query parameter.
    pub field_manager: Option<String>,
    /// `dryRun=All` was asked.
    pub dry_run: bool,
    /// Resource plural from the path (`deployments`), for resource URLs.
    pub resource: Option<String>,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Object name from the path.
    pub name: Option<String>,
    /// Subresource from the path (`status`).
    pub subresource: Option<String>,
    /// HTTP status answered (0 while still being served).
    pub status: u16,
    /// The answer was an injected fault.
    pub injected: bool,
}

impl RecordedRequest {
    /// The value of a query parameter.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A write: not a GET (so neither a read nor a watch).
    pub fn is_write(&self) -> bool {
        self.method != "GET" && self.method != "HEAD"
    }
}

/// Which requests a fault or hook applies to: a method (an HTTP method like
/// `PATCH`, or a Kubernetes verb like `watch`, `list`, `get`; `*` for any)
/// and a path fragment (`deployments/web`; `""` for any). A fragment
/// matches where it ends at a `/` or at the end of the path, so
/// `deployments/web` does not match `deployments/web-2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    method: String,
    path_fragment: String,
}

impl Matcher {
    /// Method (or verb) and path fragment.
    pub fn new(method: &str, path_fragment: &str) -> Self {
        Self {
            method: method.to_string(),
            path_fragment: path_fragment.to_string(),
        }
    }

    /// Every request.
    pub fn any() -> Self {
        Self::new("*", "")
    }

    /// Does a request (method, verb, path) match?
    pub(crate) fn matches(&self, method: &str, verb: &str, path: &str) -> bool {
        let method_ok = self.method.is_empty()
            || self.method == "*"
            || self.method.eq_ignore_ascii_case(method)
            || self.method.eq_ignore_ascii_case(verb);
        method_ok && fragment_matches(path, &self.path_fragment)
    }
}

impl From<(&str, &str)> for Matcher {
    fn from((method, path): (&str, &str)) -> Self {
        Self::new(method, path)
    }
}

impl From<&str> for Matcher {
    /// A method or verb alone.
    fn from(method: &str) -> Self {
        Self::new(method, "")
    }
}

fn fragment_matches(path: &str, fragment: &str) -> bool {
    if fragment.is_empty() {
        return true;
    }
    path.match_indices(fragment).any(|(i, _)| {
        let end = i + fragment.len();
        end == path.len() || path[end..].starts_with('/') || fragment.ends_with('/')
    })
}

/// A pending injected failure.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub matcher: Matcher,
    pub status: u16,
    pub remaining: usize,
}

/// Code run once before a matching request is served.
pub(crate) type HookFn = Box<dyn FnOnce(&crate::Cluster) + Send + 'static>;

/// A pending hook.
pub(crate) struct Hook {
    pub matcher: Matcher,
    pub run: HookFn,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_match_whole_segments() {
        let m = Matcher::new("PATCH", "deployments/web");
        let p = "/apis/apps/v1/namespaces/shop/deployments/web";
        assert!(m.matches("PATCH", "patch", p));
        assert!(!m.matches("PUT", "update", p));
        assert!(!m.matches(
            "PATCH",
            "patch",
            "/apis/apps/v1/namespaces/shop/deployments/web-2"
        ));
        assert!(m.matches(
            "PATCH",
            "patch",
            "/apis/apps/v1/namespaces/shop/deployments/web/status"
        ));
        assert!(Matcher::new("watch", "").matches("GET", "watch", p));
        assert!(!Matcher::new("list", "").matches("GET", "watch", p));
        assert!(Matcher::any().matches("DELETE", "delete", p));
    }
}
