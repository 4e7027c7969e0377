//! HTTP: routes Kubernetes URL paths to the verbs in [`crate::api`], streams
//! watches, and applies the test's hooks, latency and injected faults. The
//! handler only translates; behaviour lives in `api` and `controller`.

use crate::api::{self, ListQuery};
use crate::log::RecordedRequest;
use crate::patch::{PatchType, PATCH_TYPES_BUILTIN, PATCH_TYPES_CRD};
use crate::resources::{self, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Change, ChangeType, WatchMsg};
use crate::util::parse_query;
use crate::Cluster;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// The API server's request body limit (3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// A watch with no `timeoutSeconds` ends after this long: the real server
/// picks 30–60 minutes (`--min-request-timeout` 1800 s, randomized).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Where a URL path points.
#[derive(Debug, Clone, PartialEq)]
enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    GroupVersion(String, String),
    Object {
        res: &'static ResourceType,
        ns: Option<String>,
        name: Option<String>,
        sub: Option<String>,
    },
    Unknown,
}

fn parse_route(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Route::Version,
        ["healthz" | "readyz" | "livez", ..] => return Route::Health,
        ["api"] => return Route::CoreVersions,
        ["apis"] => return Route::Groups,
        ["apis", g] => return Route::Group(g.to_string()),
        ["api", v] => return Route::GroupVersion(String::new(), v.to_string()),
        ["apis", g, v] => return Route::GroupVersion(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Route::Unknown,
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    let Some(res) = rest
        .first()
        .and_then(|p| resources::by_path(group, version, p))
    else {
        return Route::Unknown;
    };
    if rest.len() > 3 || (ns.is_some() && !res.namespaced) {
        return Route::Unknown;
    }
    Route::Object {
        res,
        ns,
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
    }
}

fn verb_of(method: &Method, route: &Route, params: &[(String, String)]) -> &'static str {
    let Route::Object { name, .. } = route else {
        return match route {
            Route::Unknown => "other",
            _ => "discovery",
        };
    };
    let watch = params
        .iter()
        .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    match (method.as_str(), name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "other",
    }
}

/// The router: every path goes to one handler.
pub(crate) fn router(cluster: Cluster) -> Router {
    Router::new().fallback(handle).with_state(cluster)
}

fn json_response(code: u16, body: &Value) -> Response {
    let mut resp = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body.to_string(),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(err: &ApiError) -> Response {
    let mut resp = json_response(err.code, &err.to_status());
    if err.code == 429 {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

async fn handle(State(cluster): State<Cluster>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return error_response(&ApiError {
                code: 413,
                reason: "RequestEntityTooLarge",
                message: "Request entity too large: limit is 3145728".into(),
                details: None,
            })
        }
    };
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let params = parse_query(&query);
    let route = parse_route(&path);
    let verb = verb_of(&parts.method, &route, &params);
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (resource, namespace, name, subresource) = match &route {
        Route::Object { res, ns, name, sub } => (
            Some(res.plural.to_string()),
            ns.clone(),
            name.clone(),
            sub.clone(),
        ),
        _ => (None, None, None, None),
    };
    let seq = cluster.record(RecordedRequest {
        seq: 0,
        method: parts.method.to_string(),
        verb: verb.to_string(),
        path: path.clone(),
        query,
        content_type: content_type.clone(),
        body: serde_json::from_slice(&bytes).ok(),
        body_text: String::from_utf8_lossy(&bytes).into_owned(),
        field_manager: param(&params, "fieldManager").map(str::to_string),
        dry_run: param(&params, "dryRun") == Some("All"),
        params: params.clone(),
        resource,
        namespace,
        name: name.clone(),
        subresource,
        status: 0,
        injected: false,
    });

    if let Some(hook) = cluster.take_hook(parts.method.as_str(), verb, &path) {
        hook(&cluster);
    }
    let latency = cluster.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(code) = cluster.take_fault(parts.method.as_str(), verb, &path) {
        let res = match &route {
            Route::Object { res, .. } => Some(*res),
            _ => None,
        };
        let err = ApiError::injected(code, res, name.as_deref().unwrap_or(""));
        cluster.finish(seq, code, true);
        return error_response(&err);
    }

    let resp = dispatch(
        &cluster,
        &parts.method,
        &parts.headers,
        route,
        &params,
        content_type.as_deref(),
        &bytes,
    );
    cluster.finish(seq, resp.status().as_u16(), false);
    resp
}

fn dispatch(
    cluster: &Cluster,
    method: &Method,
    headers: &HeaderMap,
    route: Route,
    params: &[(String, String)],
    content_type: Option<&str>,
    body: &Bytes,
) -> Response {
    let aggregated = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=APIGroupDiscoveryList"));
    let discovery = |doc: Option<Value>| match doc {
        Some(doc) => json_response(200, &doc),
        None => error_response(&ApiError::no_such_path()),
    };
    if method != Method::GET && !matches!(route, Route::Object { .. }) {
        return error_response(&ApiError::no_such_path());
    }
    match route {
        Route::Version => json_response(200, &resources::version_doc()),
        Route::Health => "ok".into_response(),
        Route::CoreVersions | Route::Groups if aggregated => {
            let mut resp = json_response(
                200,
                &resources::aggregated_doc(route == Route::CoreVersions),
            );
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(resources::AGGREGATED_DISCOVERY),
            );
            resp
        }
        Route::CoreVersions => json_response(
            200,
            &resources::core_versions_doc(&cluster.server_address()),
        ),
        Route::Groups => json_response(200, &resources::group_list_doc()),
        Route::Group(g) => discovery(resources::group_single_doc(&g)),
        Route::GroupVersion(g, v) => discovery(resources::resource_list_doc(&g, &v)),
        Route::Unknown => error_response(&ApiError::no_such_path()),
        Route::Object { res, ns, name, sub } => {
            match object_request(
                cluster,
                method,
                res,
                ns,
                name,
                sub,
                params,
                content_type,
                body,
            ) {
                Ok(resp) => resp,
                Err(err) => error_response(&err),
            }
        }
    }
}

fn list_query(params: &[(String, String)]) -> Result<ListQuery, ApiError> {
    let labels = LabelSelector::parse(param(params, "labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(param(params, "fieldSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let limit = match param(params, "limit") {
        None | Some("") => 0,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
            .max(0) as usize,
    };
    Ok(ListQuery {
        labels,
        fields,
        limit,
        continue_token: param(params, "continue")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    })
}

fn parse_body(body: &Bytes, content_type: Option<&str>) -> Result<Value, ApiError> {
    let media = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    if media != "application/json" && !media.is_empty() {
        return Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (fakekube serves application/json; got {media})"
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))
}

#[allow(clippy::too_many_arguments)]
fn object_request(
    cluster: &Cluster,
    method: &Method,
    res: &'static ResourceType,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    params: &[(String, String)],
    content_type: Option<&str>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let status_only = match sub.as_deref() {
        None => false,
        Some("status") if res.status_subresource => true,
        Some(_) => return Err(ApiError::no_such_path()),
    };
    let dry_run = match param(params, "dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
            )))
        }
    };
    if res.namespaced && ns.is_none() && (name.is_some() || method != Method::GET) {
        return Err(ApiError::no_such_path());
    }
    let nsv = ns.clone().unwrap_or_default();
    let verb = verb_of(
        method,
        &Route::Object {
            res,
            ns: ns.clone(),
            name: name.clone(),
            sub: None,
        },
        params,
    );
    let ok = |code: u16, v: Value| Ok(json_response(code, &v));
    let writer = api::Writer {
        manager: param(params, "fieldManager"),
        force: param(params, "force") == Some("true"),
    };
    match (verb, name) {
        ("watch", name) => {
            let mut q = list_query(params)?;
            if let Some(name) = name {
                q.fields = FieldSelector::parse(&format!("metadata.name={name}"))
                    .map_err(ApiError::bad_request)?;
            }
            Ok(watch(cluster, res, ns, q, params))
        }
        ("get", Some(name)) => ok(200, api::get(&cluster.lock(), res, &nsv, &name)?),
        ("list", None) => {
            let q = list_query(params)?;
            ok(200, api::list(&cluster.lock(), res, ns.as_deref(), &q)?)
        }
        ("create", None) => {
            let obj = parse_body(body, content_type)?;
            let mut st = cluster.lock();
            let stored = api::create(&mut st, res, &nsv, obj, dry_run)?;
            if !dry_run {
                api::record_writer(&mut st, res, None, &stored, writer);
            }
            ok(201, stored)
        }
        ("update", Some(name)) => {
            let obj = parse_body(body, content_type)?;
            let mut st = cluster.lock();
            let before = st.get(res, &nsv, &name).cloned();
            let stored = api::update(&mut st, res, &nsv, &name, obj, dry_run, status_only)?;
            if !dry_run {
                api::record_writer(&mut st, res, before.as_ref(), &stored, writer);
            }
            ok(200, stored)
        }
        ("patch", Some(name)) => {
            let Some(ptype) = content_type.and_then(PatchType::from_content_type) else {
                let accepted = if res.builtin {
                    PATCH_TYPES_BUILTIN
                } else {
                    PATCH_TYPES_CRD
                };
                return Err(ApiError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format - accepted media types include: {accepted}"
                )));
            };
            ok(
                200,
                api::patch(
                    &mut cluster.lock(),
                    res,
                    &nsv,
                    &name,
                    ptype,
                    body,
                    dry_run,
                    status_only,
                    writer,
                )?,
            )
        }
        ("delete", Some(name)) => {
            let opts: Value = if body.is_empty() {
                json!({})
            } else {
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?
            };
            let rv = opts["preconditions"]["resourceVersion"].as_str();
            let uid = opts["preconditions"]["uid"].as_str();
            let dry = dry_run
                || opts["dryRun"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v == "All"));
            ok(
                200,
                api::delete(&mut cluster.lock(), res, &nsv, &name, rv, uid, dry)?,
            )
        }
        ("deletecollection", _) => Err(ApiError::method_not_supported(res, "deletecollection")),
        ("create", Some(_)) => Err(ApiError::method_not_supported(res, "create")),
        _ => Err(ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: "the server does not allow this method on the requested resource".into(),
            details: None,
        }),
    }
}

/// How a change appears to a watch with this filter, if at all: a
/// modification entering the selection is ADDED, leaving it DELETED.
fn translate(
    change: &Change,
    res: &'static ResourceType,
    ns: Option<&str>,
    q: &ListQuery,
) -> Option<&'static str> {
    if !std::ptr::eq(change.res, res) {
        return None;
    }
    let obj_ns = change.object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("");
    if ns.is_some_and(|ns| ns != obj_ns) {
        return None;
    }
    let now_in = api::selected(q, &change.object);
    match change.kind {
        ChangeType::Added if now_in => Some("ADDED"),
        ChangeType::Deleted if now_in => Some("DELETED"),
        ChangeType::Modified => {
            let was_in = change.prev.as_ref().is_some_and(|p| api::selected(q, p));
            match (was_in, now_in) {
                (true, true) => Some(ChangeType::Modified.as_str()),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            }
        }
        _ => None,
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn bookmark(res: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta}),
    )
}

/// Counts an open watch for as long as it lives.
struct WatchGuard(Cluster);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.shared.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

fn watch(
    cluster: &Cluster,
    res: &'static ResourceType,
    ns: Option<String>,
    q: ListQuery,
    params: &[(String, String)],
) -> Response {
    let timeout = param(params, "timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let bookmarks = param(params, "allowWatchBookmarks") == Some("true");
    let send_initial = param(params, "sendInitialEvents") == Some("true");
    let from = param(params, "resourceVersion").unwrap_or("").to_string();

    // Under the lock: what to send first, and a subscription that misses
    // nothing committed after it.
    let (initial, mut sub, expired) = {
        let st = cluster.lock();
        let mut expired = false;
        let sub = st.tx.subscribe();
        let mut initial: Vec<Bytes> = Vec::new();
        match from.parse::<u64>() {
            Err(_) if !from.is_empty() => {
                let err =
                    ApiError::bad_request(format!("resourceVersion: Invalid value: {from:?}"));
                return error_response(&err);
            }
            Ok(rv) if rv > 0 && !send_initial => {
                if rv < st.compacted_rv {
                    let err = ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        st.compacted_rv
                    ));
                    initial.push(event_line("ERROR", &err.to_status()));
                    expired = true;
                } else {
                    for change in st.history.iter().filter(|c| c.rv > rv) {
                        if let Some(kind) = translate(change, res, ns.as_deref(), &q) {
                            initial.push(event_line(kind, &change.object));
                        }
                    }
                }
            }
            _ => {
                for obj in st.list(res, ns.as_deref()) {
                    if api::selected(&q, obj) {
                        initial.push(event_line("ADDED", obj));
                    }
                }
                if send_initial && bookmarks {
                    initial.push(bookmark(res, st.rv, true));
                }
            }
        }
        (initial, sub, expired)
    };

    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let mut dropped = cluster.shared.drop_tx.subscribe();
    cluster.shared.open_watches.fetch_add(1, Ordering::SeqCst);
    let guard = WatchGuard(cluster.clone());
    let watched = cluster.clone();
    tokio::spawn(async move {
        let _guard = guard;
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        // The real server ends a watch after its ERROR event.
        if expired {
            return;
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                msg = sub.recv() => match msg {
                    Ok(WatchMsg::Change(change)) => {
                        if let Some(kind) = translate(&change, res, ns.as_deref(), &q) {
                            if tx.send(event_line(kind, &change.object)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok(WatchMsg::Bookmark) => {
                        if bookmarks {
                            let rv = watched.lock().rv;
                            if tx.send(bookmark(res, rv, false)).await.is_err() {
                                return;
                            }
                        }
                    }
                    // Too slow (lagged) or shutting down: end the stream; the
                    // client re-lists, as with the real watch cache.
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
                },
                _ = dropped.changed() => return,
                _ = &mut deadline => {
                    if bookmarks {
                        let rv = watched.lock().rv;
                        let _ = tx.send(bookmark(res, rv, false)).await;
                    }
                    return;
                }
                _ = tx.closed() => return,
            }
        }
    });

    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_cover_namespaced_cluster_wide_and_discovery_paths() {
        let r = parse_route("/apis/apps/v1/namespaces/shop/deployments/web");
        assert_eq!(
            r,
            Route::Object {
                res: resources::deployments(),
                ns: Some("shop".into()),
                name: Some("web".into()),
                sub: None
            }
        );
        let r = parse_route("/apis/apps/v1/replicasets");
        assert!(matches!(
            r,
            Route::Object {
                ns: None,
                name: None,
                ..
            }
        ));
        let r = parse_route("/api/v1/namespaces/shop/events");
        assert!(
            matches!(r, Route::Object { res, .. } if res.group.is_empty() && res.plural == "events")
        );
        let r = parse_route("/apis/apps/v1/namespaces/shop/deployments/web/status");
        assert!(matches!(r, Route::Object { sub: Some(s), .. } if s == "status"));
        assert_eq!(
            parse_route("/apis/apps/v1"),
            Route::GroupVersion("apps".into(), "v1".into())
        );
        assert_eq!(
            parse_route("/api/v1"),
            Route::GroupVersion(String::new(), "v1".into())
        );
        assert_eq!(parse_route("/version"), Route::Version);
        assert_eq!(parse_route("/api/v1/namespaces/shop/pods"), Route::Unknown);
    }
}
