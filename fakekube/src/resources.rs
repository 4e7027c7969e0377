//! The resource types the fake serves, and the discovery documents that
//! describe them (`/api`, `/apis`, `/apis/{group}/{version}`, aggregated v2).

use serde_json::{json, Value};

/// One served resource type (a GroupVersionResource and what the API server
/// knows about it).
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group, `""` for core.
    pub group: &'static str,
    /// API version inside the group.
    pub version: &'static str,
    /// Plural resource name as in URLs (`deployments`).
    pub plural: &'static str,
    /// Singular name (`deployment`).
    pub singular: &'static str,
    /// Kind (`Deployment`).
    pub kind: &'static str,
    /// Short names kubectl accepts (`deploy`).
    pub short_names: &'static [&'static str],
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Built into the API server (typed), as opposed to a CRD: CRDs refuse
    /// strategic merge patches and keep `kind` on list items.
    pub builtin: bool,
    /// Has a `/status` subresource: writes to the main resource keep the
    /// stored status, and create clears it.
    pub status_subresource: bool,
    /// Keeps `metadata.generation`, bumped when anything outside
    /// metadata/status changes.
    pub generation: bool,
}

impl ResourceType {
    /// `apps/v1`, or `v1` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `events` for core: the wording of Status messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps`, or `Event` for core: the wording of Invalid messages.
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Position in [`RESOURCES`], a compact key for the store.
    pub(crate) fn index(&'static self) -> usize {
        RESOURCES
            .iter()
            .position(|r| std::ptr::eq(r, self))
            .expect("every ResourceType lives in RESOURCES")
    }

    fn verbs(&self) -> Value {
        json!(["create", "delete", "get", "list", "patch", "update", "watch"])
    }
}

macro_rules! rt {
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, [$($short:expr),*], ns=$ns:expr, builtin=$b:expr, status=$s:expr, generation=$g:expr) => {
        ResourceType {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            short_names: &[$($short),*],
            namespaced: $ns,
            builtin: $b,
            status_subresource: $s,
            generation: $g,
        }
    };
}

/// Every resource type the fake serves.
pub static RESOURCES: &[ResourceType] = &[
    rt!(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        ["deploy"],
        ns = true,
        builtin = true,
        status = true,
        generation = true
    ),
    rt!(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        ["rs"],
        ns = true,
        builtin = true,
        status = true,
        generation = true
    ),
    rt!(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        ["sts"],
        ns = true,
        builtin = true,
        status = true,
        generation = true
    ),
    rt!(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        ["ds"],
        ns = true,
        builtin = true,
        status = true,
        generation = true
    ),
    rt!(
        "apps",
        "v1",
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
        [],
        ns = true,
        builtin = true,
        status = false,
        generation = false
    ),
    rt!(
        "",
        "v1",
        "events",
        "event",
        "Event",
        ["ev"],
        ns = true,
        builtin = true,
        status = false,
        generation = false
    ),
    rt!(
        "events.k8s.io",
        "v1",
        "events",
        "event",
        "Event",
        ["ev"],
        ns = true,
        builtin = true,
        status = false,
        generation = false
    ),
    rt!(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        [],
        ns = true,
        builtin = true,
        status = false,
        generation = false
    ),
    rt!(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "kustomizations",
        "kustomization",
        "Kustomization",
        ["ks"],
        ns = true,
        builtin = false,
        status = true,
        generation = true
    ),
    rt!(
        "helm.toolkit.fluxcd.io",
        "v2",
        "helmreleases",
        "helmrelease",
        "HelmRelease",
        ["hr"],
        ns = true,
        builtin = false,
        status = true,
        generation = true
    ),
    rt!(
        "argoproj.io",
        "v1alpha1",
        "applications",
        "application",
        "Application",
        ["app", "apps"],
        ns = true,
        builtin = false,
        status = false,
        generation = true
    ),
];

/// Deployments.
pub(crate) fn deployments() -> &'static ResourceType {
    &RESOURCES[0]
}
/// ReplicaSets.
pub(crate) fn replicasets() -> &'static ResourceType {
    &RESOURCES[1]
}
/// StatefulSets.
pub(crate) fn statefulsets() -> &'static ResourceType {
    &RESOURCES[2]
}
/// DaemonSets.
pub(crate) fn daemonsets() -> &'static ResourceType {
    &RESOURCES[3]
}
/// ControllerRevisions.
pub(crate) fn controllerrevisions() -> &'static ResourceType {
    &RESOURCES[4]
}
/// core/v1 Events.
#[cfg(test)]
pub(crate) fn core_events() -> &'static ResourceType {
    &RESOURCES[5]
}

/// Resolve a name a test would write: `deployments`, `deployment`, `deploy`,
/// `Deployment`, `deployments.apps`, `apps/v1/deployments`, `v1/events`.
/// Bare `events` means core/v1 events.
pub fn resolve(name: &str) -> Option<&'static ResourceType> {
    let lower = name.to_ascii_lowercase();
    if let Some((gv, plural)) = lower.rsplit_once('/') {
        let (group, version) = gv.rsplit_once('/').unwrap_or(("", gv));
        return by_path(group, version, plural);
    }
    if let Some((plural, group)) = lower.split_once('.') {
        return RESOURCES
            .iter()
            .find(|r| r.group == group && (r.plural == plural || r.singular == plural));
    }
    RESOURCES.iter().find(|r| {
        r.plural == lower
            || r.singular == lower
            || r.kind.eq_ignore_ascii_case(&lower)
            || r.short_names.contains(&lower.as_str())
    })
}

/// The resource behind a URL's group, version and plural.
pub fn by_path(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource for an object's `apiVersion` and `kind`.
pub fn by_api_version_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// `GET /version`: a v1.35 server.
pub(crate) fn version_doc() -> Value {
    json!({
        "major": "1",
        "minor": "35",
        "emulationMajor": "1",
        "emulationMinor": "35",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "34",
        "gitVersion": "v1.35.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `GET /api`.
pub(crate) fn core_versions_doc(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

fn group_doc(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis`.
pub(crate) fn group_list_doc() -> Value {
    let groups: Vec<Value> = groups().into_iter().map(|(g, v)| group_doc(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`.
pub(crate) fn group_single_doc(group: &str) -> Option<Value> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == group)?;
    let mut doc = group_doc(g, v);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`.
pub(crate) fn resource_list_doc(group: &str, version: &str) -> Option<Value> {
    let members: Vec<&ResourceType> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if members.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in &members {
        let mut doc = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            doc["shortNames"] = json!(r.short_names);
        }
        resources.push(doc);
        if r.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = members[0].api_version();
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// The content type of aggregated discovery (`apidiscovery.k8s.io/v2`).
pub(crate) const AGGREGATED_DISCOVERY: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Aggregated discovery for `/api` (core) or `/apis` (named groups).
pub(crate) fn aggregated_doc(core: bool) -> Value {
    let mut items = Vec::new();
    let pairs: Vec<(&str, &str)> = if core { vec![("", "v1")] } else { groups() };
    for (group, version) in pairs {
        let resources: Vec<Value> = RESOURCES
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .map(|r| {
                let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
                let mut doc = json!({
                    "resource": r.plural,
                    "responseKind": kind,
                    "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": r.singular,
                    "verbs": r.verbs(),
                });
                if !r.short_names.is_empty() {
                    doc["shortNames"] = json!(r.short_names);
                }
                if r.status_subresource {
                    doc["subresources"] = json!([{
                        "subresource": "status",
                        "responseKind": kind,
                        "verbs": ["get", "patch", "update"],
                    }]);
                }
                doc
            })
            .collect();
        items.push(json!({
            "metadata": {"name": group},
            "versions": [{"version": version, "resources": resources, "freshness": "Current"}],
        }));
    }
    json!({
        "apiVersion": "apidiscovery.k8s.io/v2",
        "kind": "APIGroupDiscoveryList",
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_the_names_kubectl_accepts() {
        for name in [
            "deployments",
            "deployment",
            "deploy",
            "Deployment",
            "deployments.apps",
            "apps/v1/deployments",
        ] {
            assert_eq!(resolve(name).map(|r| r.kind), Some("Deployment"), "{name}");
        }
        assert_eq!(resolve("events").unwrap().group, "");
        assert_eq!(resolve("v1/events").unwrap().group, "");
        assert_eq!(
            resolve("events.events.k8s.io").unwrap().group,
            "events.k8s.io"
        );
        assert_eq!(resolve("hr").unwrap().kind, "HelmRelease");
        assert!(resolve("pods").is_none());
    }

    #[test]
    fn status_wording_names_match_the_api_server() {
        assert_eq!(deployments().qualified(), "deployments.apps");
        assert_eq!(core_events().qualified(), "events");
        assert_eq!(deployments().group_kind(), "Deployment.apps");
    }

    #[test]
    fn discovery_lists_every_group() {
        let doc = group_list_doc();
        let names: Vec<&str> = doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"apps"));
        assert!(names.contains(&"argoproj.io"));
        let apps = resource_list_doc("apps", "v1").unwrap();
        assert!(apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "deployments/status"));
    }
}
