//! How the API server's errors read in rollbackd's reports: a 403 names who
//! may not do which verb on what (RBAC); other errors keep the API server's
//! message. [`UndoError`] is the undo engine's failure.

use crate::core::undo_plan::PlanError;

/// Why an undo failed.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    /// kubectl's planning refusals (paused, no history, no such revision).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The workload does not exist.
    #[error("{resource} {name:?} not found")]
    NotFound {
        /// `deployments.apps`, ...
        resource: &'static str,
        /// Name.
        name: String,
    },
    /// The patch was refused for another reason.
    #[error("failed restoring revision {revision}: {message}")]
    Restore {
        /// Target revision.
        revision: i64,
        /// The API server's message.
        message: String,
    },
    /// The API server answered 403: rollbackd's identity lacks a verb
    /// (RBAC). The text starts with `forbidden:` and names the verb and
    /// the resource ([`forbidden`]).
    #[error("{0}")]
    Forbidden(String),
    /// The API server could not be reached or answered an error.
    #[error("kubernetes API: {0}")]
    Api(String),
}

impl UndoError {
    pub(super) fn from_kube(e: kube::Error) -> UndoError {
        match forbidden(&e) {
            Some(text) => UndoError::Forbidden(text),
            None => UndoError::Api(api_message(&e)),
        }
    }
}

pub(super) fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// A kube error as rollbackd reports it: [`forbidden`]'s wording for a
/// 403, else the API server's message.
pub fn describe_kube_error(e: &kube::Error) -> String {
    forbidden(e).unwrap_or_else(|| api_message(e))
}

/// For a 403, what rollbackd may not do, from the API server's message
/// (`deployments.apps "web" is forbidden: User "system:serviceaccount:ns:sa"
/// cannot patch resource "deployments" in API group "apps" in the namespace
/// "ns"`): `forbidden: rollbackd's ServiceAccount ns/sa may not patch
/// deployments.apps in namespace ns (RBAC)`. A 403 worded otherwise (an
/// admission webhook, a terminating namespace) keeps its message after
/// `forbidden: `. `None` for any other error.
pub fn forbidden(e: &kube::Error) -> Option<String> {
    match e {
        kube::Error::Api(status) if status.code == 403 => Some(forbidden_message(&status.message)),
        _ => None,
    }
}

fn forbidden_message(message: &str) -> String {
    static RBAC: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"User "([^"]*)" cannot (\S+) resource "([^"]*)" in API group "([^"]*)" (?:in the namespace "([^"]*)"|at the cluster scope)(?::\s*(.+))?"#,
        )
        .expect("valid regex")
    });
    let Some(c) = RBAC.captures(message) else {
        return format!("forbidden: {message}");
    };
    let user = &c[1];
    let who = match user.strip_prefix("system:serviceaccount:") {
        Some(sa) => format!("ServiceAccount {}", sa.replacen(':', "/", 1)),
        None => format!("user {user:?}"),
    };
    let resource = match &c[4] {
        "" => c[3].to_string(),
        group => format!("{}.{group}", &c[3]),
    };
    let scope = match c.get(5) {
        Some(ns) => format!("in namespace {}", ns.as_str()),
        None => "cluster-wide".to_string(),
    };
    let rbac = match c.get(6) {
        // The RBAC authorizer's own reasons start with `RBAC: `.
        Some(reason) => format!("RBAC: {}", reason.as_str().trim_start_matches("RBAC: ")),
        None => "RBAC".to_string(),
    };
    format!(
        "forbidden: rollbackd's {who} may not {} {resource} {scope} ({rbac})",
        &c[2]
    )
}

pub(super) fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, "Forbidden")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn a_403_names_who_may_not_do_what_where() {
        // The API server's words (kube-apiserver v1.37.2, RBAC).
        let cases = [
            (
                r#"deployments.apps "web" is forbidden: User "system:serviceaccount:shop:rollbackd" cannot patch resource "deployments" in API group "apps" in the namespace "shop""#,
                "forbidden: rollbackd's ServiceAccount shop/rollbackd may not patch deployments.apps in namespace shop (RBAC)",
            ),
            (
                r#"events is forbidden: User "system:serviceaccount:ops:rb" cannot create resource "events" in API group "" in the namespace "shop""#,
                "forbidden: rollbackd's ServiceAccount ops/rb may not create events in namespace shop (RBAC)",
            ),
            (
                r#"nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope: RBAC: clusterrole.rbac.authorization.k8s.io "x" not found"#,
                r#"forbidden: rollbackd's user "alice" may not list nodes cluster-wide (RBAC: clusterrole.rbac.authorization.k8s.io "x" not found)"#,
            ),
            (
                r#"unable to create new content in namespace shop because it is being terminated"#,
                "forbidden: unable to create new content in namespace shop because it is being terminated",
            ),
        ];
        for (message, want) in cases {
            assert_eq!(forbidden(&status(403, message)).as_deref(), Some(want));
            assert_eq!(describe_kube_error(&status(403, message)), want);
            assert!(matches!(
                UndoError::from_kube(status(403, message)),
                UndoError::Forbidden(text) if text == want
            ));
        }
        let conflict = status(409, "the object has been modified");
        assert_eq!(forbidden(&conflict), None);
        assert_eq!(
            describe_kube_error(&conflict),
            "the object has been modified"
        );
        assert!(matches!(UndoError::from_kube(conflict), UndoError::Api(_)));
    }
}
