//! `kind: Status` failures worded as kube-apiserver words them
//! (`k8s.io/apimachinery/pkg/api/errors/errors.go`).

use crate::resources::ResourceType;
use serde_json::{json, Map, Value};

/// An API failure: HTTP code, `reason`, `message` and `details`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code (also `code` in the body).
    pub code: u16,
    /// `reason` (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, …).
    pub reason: &'static str,
    /// `message`, worded like the real server's.
    pub message: String,
    /// `details`, or `None` when the real server sends none.
    pub details: Option<Value>,
}

fn details(res: &ResourceType, name: &str) -> Value {
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !res.group.is_empty() {
        d.insert("group".into(), json!(res.group));
    }
    d.insert("kind".into(), json!(res.plural));
    Value::Object(d)
}

impl ApiError {
    /// `NewNotFound`: `deployments.apps "web" not found`.
    pub fn not_found(res: &ResourceType, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{}\" not found", res.qualified(), name),
            details: Some(details(res, name)),
        }
    }

    /// `NewAlreadyExists`: `deployments.apps "web" already exists`.
    pub fn already_exists(res: &ResourceType, name: &str) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{}\" already exists", res.qualified(), name),
            details: Some(details(res, name)),
        }
    }

    /// `NewConflict` with `storage.ErrConflict`'s text: the optimistic
    /// concurrency failure of a stale `resourceVersion`.
    pub fn conflict_modified(res: &ResourceType, name: &str) -> Self {
        Self::conflict(
            res,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `NewConflict`: `Operation cannot be fulfilled on deployments.apps "web": …`.
    pub fn conflict(res: &ResourceType, name: &str, why: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                res.qualified(),
                name,
                why
            ),
            details: Some(details(res, name)),
        }
    }

    /// `NewInvalid`: `Deployment.apps "web" is invalid: field: Kind: detail`.
    /// `causes` are (field, type, message) triples.
    pub fn invalid(res: &ResourceType, name: &str, causes: &[(&str, &str, String)]) -> Self {
        let text: Vec<String> = causes.iter().map(|(f, _, m)| format!("{f}: {m}")).collect();
        let text = if text.len() == 1 {
            text[0].clone()
        } else {
            format!("[{}]", text.join(", "))
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|(f, t, m)| json!({"reason": t, "message": m, "field": f}))
            .collect();
        let mut d = Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !res.group.is_empty() {
            d.insert("group".into(), json!(res.group));
        }
        d.insert("kind".into(), json!(res.kind));
        d.insert("causes".into(), Value::Array(causes));
        Self {
            code: 422,
            reason: "Invalid",
            message: format!("{} \"{}\" is invalid: {}", res.group_kind(), name, text),
            details: Some(Value::Object(d)),
        }
    }

    /// What `applyJSPatch` returns when a JSON patch fails to apply (a failed
    /// `test`, a missing path): `NewGenericServerResponse(422, "",
    /// GroupResource{}, "", err.Error(), 0, false)`. With
    /// `isUnexpectedResponse=false` the json-patch error text is dropped, so
    /// the client sees only the generic sentence.
    pub fn json_patch_failed() -> Self {
        Self {
            code: 422,
            reason: "Invalid",
            message: "the server rejected our request due to an error in our request".into(),
            details: Some(json!({})),
        }
    }

    /// `NewBadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: None,
        }
    }

    /// 415 `UnsupportedMediaType`.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self {
            code: 415,
            reason: "UnsupportedMediaType",
            message: message.into(),
            details: None,
        }
    }

    /// `NewMethodNotSupported`.
    pub fn method_not_supported(res: &ResourceType, action: &str) -> Self {
        Self {
            code: 405,
            reason: "MethodNotAllowed",
            message: format!(
                "{action} is not supported on resources of kind \"{}\"",
                res.qualified()
            ),
            details: Some(json!({"group": res.group, "kind": res.plural})),
        }
    }

    /// The 404 of an unknown path.
    pub fn no_such_path() -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: Some(json!({})),
        }
    }

    /// `NewResourceExpired`: the 410 of a too-old watch resourceVersion.
    pub fn expired(message: impl Into<String>) -> Self {
        Self {
            code: 410,
            reason: "Expired",
            message: message.into(),
            details: None,
        }
    }

    /// An injected fault, worded as the real server words that code.
    pub fn injected(code: u16, res: Option<&ResourceType>, name: &str) -> Self {
        match (code, res) {
            (409, Some(r)) => Self::conflict_modified(r, name),
            (404, Some(r)) => Self::not_found(r, name),
            (422, _) => Self::json_patch_failed(),
            (429, _) => Self {
                code,
                reason: "TooManyRequests",
                message: "Too many requests: please try again later".into(),
                details: Some(json!({"retryAfterSeconds": 1})),
            },
            (503, _) => Self {
                code,
                reason: "ServiceUnavailable",
                message: "the server is currently unable to handle the request".into(),
                details: None,
            },
            (504, _) => Self {
                code,
                reason: "Timeout",
                message: "Timeout: request did not complete within requested timeout - context deadline exceeded".into(),
                details: None,
            },
            (c, _) if c >= 500 => Self {
                code,
                reason: "InternalError",
                message: "Internal error occurred: injected fault".into(),
                details: Some(json!({"causes": [{"message": "injected fault"}]})),
            },
            (c, _) => Self {
                code,
                reason: "BadRequest",
                message: format!("injected fault with status {c}"),
                details: None,
            },
        }
    }

    /// The `kind: Status` body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{core_events, deployments};

    #[test]
    fn messages_are_worded_like_kube_apiserver() {
        assert_eq!(
            ApiError::not_found(deployments(), "web").message,
            "deployments.apps \"web\" not found"
        );
        assert_eq!(
            ApiError::conflict_modified(deployments(), "web").message,
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(
            ApiError::already_exists(core_events(), "e").message,
            "events \"e\" already exists"
        );
        let s = ApiError::not_found(deployments(), "web").to_status();
        assert_eq!(
            s["details"],
            json!({"name": "web", "group": "apps", "kind": "deployments"})
        );
        assert_eq!(s["code"], 404);
        assert_eq!(s["status"], "Failure");
    }
}
