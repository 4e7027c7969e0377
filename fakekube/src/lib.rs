//! A fake Kubernetes API server for rollbackd's tests: plain HTTP + JSON on
//! a loopback port, with the deployment controller's revision bookkeeping,
//! so `kubectl rollout undo`-exact rollbacks can be tested without a cluster.
//!
//! ```text
//!  test / rollbackd (kube-rs)            FakeKube
//!  ─────────────────────────   HTTP   ┌───────────────────────────────────────┐
//!   GET LIST WATCH POST PUT  ───────▶ │ server   hooks → latency → faults     │
//!   PATCH DELETE, discovery           │   │      request log                  │
//!                                     │   ▼                                   │
//!  scenario DSL (in-process) ───────▶ │ api      defaults, validation, rv,    │
//!   fake.deployment("shop","web")     │   │      generation, dry-run, GC      │
//!     .image("nginx:1.25").create()   │   ▼                                   │
//!                                     │ store ──▶ controllers (deployment,    │
//!                                     │   │        statefulset, daemonset)    │
//!                                     │   └──▶ change history ──▶ watches     │
//!                                     └───────────────────────────────────────┘
//! ```
//!
//! - `server` (HTTP): URL paths as the real server lays them out,
//!   watch streaming, fault injection, request log.
//! - `api`: the verbs and their bookkeeping.
//! - `store`: JSON objects, one resourceVersion counter, change history.
//! - `controller`: deployment / StatefulSet / DaemonSet controllers.
//! - `dsl`: [`WorkloadBuilder`] and [`Workload`], for tests that read like
//!   the seeds.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use fakekube::{FakeKube, Rollout};
//! let fake = FakeKube::start().await;
//! let dir = tempfile::tempdir()?;
//! fake.write_kubeconfig(dir.path().join("config"))?; // for kube-rs / kubectl
//! let web = fake.deployment("shop", "web").image("nginx:1.25").create().await;
//! web.deploy("nginx:1.26", "upgrade to nginx:1.26");
//! fake.set_image_rollout("nginx:1.27-bad", Rollout::Never);
//! web.set_image("nginx:1.27-bad");
//! // … run rollbackd against fake.url() …
//! assert_eq!(fake.patches_to("deployments", "shop", "web").len(), 1);
//! # Ok(()) }
//! ```
//!
//! # What is faithful
//!
//! Checked against the Kubernetes sources (see the module docs):
//! - URL layout, `kind: Status` bodies and wording for 404 / 409
//!   (AlreadyExists, Conflict) / 422 (Invalid), including the 422 of a
//!   failed JSON-patch `test`: `applyJSPatch` answers
//!   `NewGenericServerResponse(422, …, isUnexpectedResponse=false)`, which
//!   drops the json-patch error text and says "the server rejected our
//!   request due to an error in our request".
//! - resourceVersion: one global counter, bumped on every write, no bump
//!   and no event for a write that changes nothing; optimistic concurrency
//!   on PUT and on patches that set `metadata.resourceVersion`;
//!   `generation` bumped when anything outside metadata/status changes;
//!   status preserved by main-resource writes of kinds with a `/status`
//!   subresource; built-in list items without `apiVersion`/`kind`.
//! - Deployment controller: `FindNewReplicaSet` (template equal ignoring
//!   `pod-template-hash`), `SetNewReplicaSetAnnotations` (revision max+1,
//!   `revision-history` appended, 2000-char cap, annotations copied but
//!   `annotationsToSkip`), `{name}-{hash}` names in `SafeEncodeString`'s
//!   alphabet, desired/max-replicas annotations, Deployment revision
//!   annotation, conditions and their messages, `cleanupDeployment`.
//! - ControllerRevisions: `data` = `{"spec":{"template":{…,"$patch":"replace"}}}`
//!   (both controllers' `getPatch`), reuse by bumping `revision`,
//!   StatefulSet names from FNV-1 of the data plus collision count, labels
//!   `controller.kubernetes.io/hash` / `controller-revision-hash`, DaemonSet
//!   revisions carrying the DaemonSet's annotations, history truncation.
//! - Defaults of Deployment/StatefulSet/DaemonSet/pod templates, so stored
//!   templates look like a real cluster's (the kubectl fixture's).
//!
//! # What is simplified
//!
//! - No pods, nodes, scheduling or real time: rollout progress is the
//!   test's [`Rollout`] choice; DaemonSets assume [`Cluster::set_nodes`]
//!   nodes (3). Controllers run synchronously inside the write that
//!   triggers them, so their writes get the next resourceVersions and the
//!   response to the client's write is the object before the controller
//!   acted, as with a real server.
//! - Pod-template hashes use FNV-1a over canonical JSON, not Go's
//!   `DeepHashObject`: names have the real shape but not the real value
//!   (ReplicaSet names and DaemonSet `controller-revision-hash` labels;
//!   StatefulSet revision hashes are the real ones).
//! - Strategic merge patch: merge patch plus `$patch: replace|delete` and
//!   merge keys for the common pod-spec lists; no `$retainKeys`,
//!   `$setElementOrder` ordering or `$deleteFromPrimitiveList`.
//! - Server-side apply keeps field ownership per manager (conflicts, `force`,
//!   fields an applier drops) for map fields, lists whole, in a table beside
//!   the object: no `managedFields` in responses, and apply does not create
//!   a missing object.
//! - Paging serves continued pages from the current state, not a snapshot.
//!   Core and `events.k8s.io` Events are two stores. Namespaces need not
//!   exist. No admission, RBAC, finalizers or deletion
//!   grace: deletes are immediate, dependents are collected at once.
//! - Validation covers what a rollback can trip (selector vs template
//!   labels, required fields, immutable selector).
//! - Request bodies are JSON (and YAML) only: kubectl 1.35's `create` sends
//!   protobuf and is answered 415, so tests create through kube-rs.
//! - An instant rollout scales each ReplicaSet in one write: the real
//!   controller's maxSurge steps give ReplicaSets a higher `generation`.
//!
//! `tests/engine_both.rs` in rollbackd runs the same steps here and on a
//! real kube-apiserver v1.37 and compares the objects field by field; it
//! found (and the fake now has) `status.terminatingReplicas` on Deployments
//! and ReplicaSets, the StatefulSet default `rollingUpdate.maxUnavailable:
//! 1`, and the DaemonSet annotation `deprecated.daemonset.template.generation`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod api;
mod controller;
mod defaults;
mod dsl;
mod fields;
mod log;
mod patch;
mod resources;
mod selector;
mod server;
mod status;
mod store;
mod util;

pub use controller::{
    revision_data, templates_equal_ignoring_hash, Rollout, DESIRED_REPLICAS, DS_HASH_LABEL,
    MAX_REPLICAS, POD_TEMPLATE_HASH, REVISION, REVISION_HISTORY, SKIP_COPY_ANNOTATIONS,
    STS_HASH_LABEL,
};
pub use dsl::{rollout_status, HistoryRow, Workload, WorkloadBuilder, WorkloadKind, CHANGE_CAUSE};
pub use log::{Matcher, RecordedRequest};
pub use patch::PatchType;
pub use resources::{resolve, ResourceType, RESOURCES};
pub use selector::{FieldSelector, LabelSelector};
pub use status::ApiError;

use crate::log::{Fault, Hook};
use crate::store::State;
use crate::util::{lock, Clock};
use serde_json::Value;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Shared by the server, the DSL and every handle.
pub(crate) struct Shared {
    /// Objects, counter, history, controller settings.
    state: Mutex<State>,
    /// Every request, in arrival order.
    log: Mutex<Vec<RecordedRequest>>,
    /// Pending injected failures.
    faults: Mutex<Vec<Fault>>,
    /// Pending hooks.
    hooks: Mutex<Vec<Hook>>,
    /// Delay before serving each request.
    latency: Mutex<Duration>,
    /// Bumped to close every open watch.
    drop_tx: watch::Sender<u64>,
    /// Number of open watch streams.
    open_watches: AtomicUsize,
    /// `host:port` once serving.
    addr: OnceLock<SocketAddr>,
    /// The clock behind every timestamp.
    clock: Arc<Clock>,
}

/// The fake cluster: state, controllers, faults and the request log. Cheap
/// to clone; every clone is the same cluster. A [`FakeKube`] derefs to it.
#[derive(Clone)]
pub struct Cluster {
    shared: Arc<Shared>,
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Cluster {
    /// An empty cluster, not yet served over HTTP.
    pub fn new() -> Self {
        static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let seed = SEED.fetch_add(0x9e37_79b9, std::sync::atomic::Ordering::Relaxed);
        let clock = Arc::new(Clock::default());
        let (drop_tx, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::new(seed, clock.clone())),
                log: Mutex::new(Vec::new()),
                faults: Mutex::new(Vec::new()),
                hooks: Mutex::new(Vec::new()),
                latency: Mutex::new(Duration::ZERO),
                drop_tx,
                open_watches: AtomicUsize::new(0),
                addr: OnceLock::new(),
                clock,
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    // ---- state ----------------------------------------------------------

    /// Seed from a `kubectl get -o json` List, verbatim: uids,
    /// resourceVersions, annotations, ownerReferences and status are kept,
    /// the resourceVersion counter moves past the highest, no controller
    /// runs. Returns the number of objects loaded.
    pub fn load_list(&self, json: &str) -> anyhow::Result<usize> {
        let list: Value = serde_json::from_str(json)?;
        let items = list["items"]
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("not a List: no items"))?;
        let mut st = self.lock();
        for item in items {
            let res = resource_of(item)?;
            st.seed_verbatim(res, item.clone());
        }
        Ok(items.len())
    }

    /// Store one object as given (its `apiVersion`/`kind` pick the
    /// resource), with a new resourceVersion; uid and creationTimestamp are
    /// filled in if missing. No validation, no controller. Panics on an
    /// unknown kind.
    pub fn put_object(&self, mut obj: Value) -> Value {
        let res = resource_of(&obj).unwrap_or_else(|e| panic!("put_object: {e}"));
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        self.lock().seed_verbatim(res, obj)
    }

    /// Create through the API (defaults, validation, controllers), as
    /// `kubectl create` would.
    pub fn create(&self, obj: Value) -> Result<Value, ApiError> {
        let res = resource_of(&obj).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        api::create(&mut self.lock(), res, &ns, obj, false)
    }

    /// Replace through the API (a PUT): resourceVersion preconditions,
    /// defaults, validation, controllers.
    pub fn replace(&self, obj: Value) -> Result<Value, ApiError> {
        let res = resource_of(&obj).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        api::update(&mut self.lock(), res, &ns, &name, obj, false, false)
    }

    /// Delete through the API (dependents are garbage-collected).
    pub fn delete(&self, resource: &str, ns: &str, name: &str) -> Result<(), ApiError> {
        let res = resolve_or_panic(resource);
        api::delete(&mut self.lock(), res, ns, name, None, None, false).map(|_| ())
    }

    /// One object (`resource` as kubectl spells it: `deployments`,
    /// `deploy`, `rs`, `apps/v1/deployments`, …).
    pub fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let res = resolve_or_panic(resource);
        self.lock().get(res, ns, name).cloned()
    }

    /// All objects of a resource, in one namespace or all, in key order.
    pub fn list(&self, resource: &str, ns: Option<&str>) -> Vec<Value> {
        let res = resolve_or_panic(resource);
        self.lock().list(res, ns).into_iter().cloned().collect()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    // ---- the DSL ----------------------------------------------------------

    /// Build a Deployment.
    pub fn deployment(&self, ns: &str, name: &str) -> WorkloadBuilder {
        WorkloadBuilder::new(self.clone(), WorkloadKind::Deployment, ns, name)
    }

    /// Build a StatefulSet.
    pub fn statefulset(&self, ns: &str, name: &str) -> WorkloadBuilder {
        WorkloadBuilder::new(self.clone(), WorkloadKind::StatefulSet, ns, name)
    }

    /// Build a DaemonSet.
    pub fn daemonset(&self, ns: &str, name: &str) -> WorkloadBuilder {
        WorkloadBuilder::new(self.clone(), WorkloadKind::DaemonSet, ns, name)
    }

    /// A handle on an existing (or future) workload, e.g. one loaded with
    /// [`load_list`](Self::load_list).
    pub fn workload(&self, kind: WorkloadKind, ns: &str, name: &str) -> Workload {
        Workload::new(self.clone(), kind, ns, name)
    }

    // ---- rollouts -------------------------------------------------------

    /// How rollouts of workloads without a more specific setting progress
    /// (default [`Rollout::Instant`]).
    pub fn set_default_rollout(&self, mode: Rollout) {
        let mut st = self.lock();
        st.ctl.default_mode = mode;
        controller::resync_all(&mut st);
    }

    /// How rollouts of the workloads named `name` in `ns` progress.
    pub fn set_rollout(&self, ns: &str, name: &str, mode: Rollout) {
        let mut st = self.lock();
        st.ctl
            .modes
            .insert((ns.to_string(), name.to_string()), mode);
        controller::resync_all(&mut st);
    }

    /// How rollouts to a template using `image` progress, whatever the
    /// workload: `set_image_rollout("nginx:1.27-bad", Rollout::Never)`.
    pub fn set_image_rollout(&self, image: &str, mode: Rollout) {
        let mut st = self.lock();
        st.ctl.image_modes.insert(image.to_string(), mode);
        controller::resync_all(&mut st);
    }

    /// Number of nodes DaemonSets run on (default 3).
    pub fn set_nodes(&self, nodes: i64) {
        let mut st = self.lock();
        st.ctl.nodes = Some(nodes.max(0));
        controller::resync_all(&mut st);
    }

    /// Move the `Steps` rollouts of workloads named `name` in `ns` one step
    /// (MODIFIED events follow). Returns whether anything moved.
    pub fn advance(&self, ns: &str, name: &str) -> bool {
        controller::advance(&mut self.lock(), ns, name)
    }

    /// Declare the unfinished rollout of Deployment `name` past its
    /// `progressDeadlineSeconds`: `Progressing=False`,
    /// `ProgressDeadlineExceeded`. Returns whether there was one.
    pub fn expire_progress_deadline(&self, ns: &str, name: &str) -> bool {
        controller::expire(&mut self.lock(), ns, name)
    }

    // ---- clock ------------------------------------------------------------

    /// Freeze the clock behind creationTimestamps and condition times.
    pub fn freeze_clock(&self, at: SystemTime) {
        let secs = at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        self.shared.clock.freeze(secs);
    }

    /// Move the (then frozen) clock forward.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by.as_secs() as i64);
    }

    // ---- faults -----------------------------------------------------------

    /// Answer the next `times` requests matching `matcher` with `status`
    /// (a `kind: Status` worded as the real server words that code: 409 is
    /// the optimistic-concurrency Conflict, 500 an InternalError, 429 carries
    /// `Retry-After`). `fail_next(("PATCH", "deployments/web"), 409, 1)`.
    pub fn fail_next(&self, matcher: impl Into<Matcher>, status: u16, times: usize) {
        lock(&self.shared.faults).push(Fault {
            matcher: matcher.into(),
            status,
            remaining: times,
        });
    }

    /// Delay every request by `latency` (zero to stop).
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.shared.latency) = latency;
    }

    /// Close every open watch stream now (clients must re-watch).
    pub fn drop_watches(&self) {
        self.shared.drop_tx.send_modify(|n| *n += 1);
    }

    /// Send a BOOKMARK to every open watch that allowed bookmarks.
    pub fn send_bookmarks(&self) {
        let _ = self.lock().tx.send(store::WatchMsg::Bookmark);
    }

    /// Number of open watch streams.
    pub fn open_watches(&self) -> usize {
        self.shared
            .open_watches
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Run `hook` once, just before the next request matching `method` (an
    /// HTTP method or a verb, `*` for any) and `path_fragment` is served:
    /// e.g. land a newer deploy between rollbackd's GET and its PATCH.
    pub fn on_next(
        &self,
        method: &str,
        path_fragment: &str,
        hook: impl FnOnce(&Cluster) + Send + 'static,
    ) {
        lock(&self.shared.hooks).push(Hook {
            matcher: Matcher::new(method, path_fragment),
            run: Box::new(hook),
        });
    }

    pub(crate) fn take_hook(&self, method: &str, verb: &str, path: &str) -> Option<log::HookFn> {
        let mut hooks = lock(&self.shared.hooks);
        let i = hooks
            .iter()
            .position(|h| h.matcher.matches(method, verb, path))?;
        Some(hooks.remove(i).run)
    }

    pub(crate) fn take_fault(&self, method: &str, verb: &str, path: &str) -> Option<u16> {
        let mut faults = lock(&self.shared.faults);
        let i = faults
            .iter()
            .position(|f| f.remaining > 0 && f.matcher.matches(method, verb, path))?;
        faults[i].remaining -= 1;
        let status = faults[i].status;
        if faults[i].remaining == 0 {
            faults.remove(i);
        }
        Some(status)
    }

    pub(crate) fn latency(&self) -> Duration {
        *lock(&self.shared.latency)
    }

    // ---- request log --------------------------------------------------------

    pub(crate) fn record(&self, mut req: RecordedRequest) -> usize {
        let mut log = lock(&self.shared.log);
        req.seq = log.len();
        log.push(req);
        log.len() - 1
    }

    pub(crate) fn finish(&self, seq: usize, status: u16, injected: bool) {
        if let Some(r) = lock(&self.shared.log).get_mut(seq) {
            r.status = status;
            r.injected = injected;
        }
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Every write (any method but GET: creates, updates, patches,
    /// deletes), dry-run ones included, in order.
    pub fn writes(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_write)
            .collect()
    }

    /// The PATCH requests to one object (`resource` as kubectl spells it;
    /// not its subresources), in order.
    pub fn patches_to(&self, resource: &str, ns: &str, name: &str) -> Vec<RecordedRequest> {
        let res = resolve_or_panic(resource);
        let prefix = if res.group.is_empty() {
            format!("/api/{}/", res.version)
        } else {
            format!("/apis/{}/{}/", res.group, res.version)
        };
        self.requests()
            .into_iter()
            .filter(|r| {
                r.method == "PATCH"
                    && r.resource.as_deref() == Some(res.plural)
                    && r.path.starts_with(&prefix)
                    && r.namespace.as_deref() == Some(ns)
                    && r.name.as_deref() == Some(name)
                    && r.subresource.is_none()
            })
            .collect()
    }

    /// Forget the request log.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// `host:port` the server listens on (empty before it serves).
    pub(crate) fn server_address(&self) -> String {
        self.shared
            .addr
            .get()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }
}

fn resource_of(obj: &Value) -> anyhow::Result<&'static ResourceType> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    resources::by_api_version_kind(api_version, kind)
        .ok_or_else(|| anyhow::anyhow!("fakekube does not serve {api_version} {kind}"))
}

fn resolve_or_panic(resource: &str) -> &'static ResourceType {
    resolve(resource)
        .unwrap_or_else(|| panic!("fakekube does not serve a resource called {resource:?}"))
}

/// The fake API server, serving a [`Cluster`] over HTTP on loopback until
/// dropped or [`shutdown`](Self::shutdown). Derefs to its [`Cluster`].
pub struct FakeKube {
    cluster: Cluster,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Deref for FakeKube {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl FakeKube {
    /// Serve an empty cluster on `127.0.0.1` and a port from the OS. Panics
    /// if loopback cannot be bound (a test helper).
    pub async fn start() -> FakeKube {
        Self::serve(
            Cluster::new(),
            "127.0.0.1:0".parse().expect("a valid address"),
        )
        .await
        .expect("binding 127.0.0.1:0")
    }

    /// Serve `cluster` on `addr` (port 0: any free port).
    pub async fn serve(cluster: Cluster, addr: SocketAddr) -> std::io::Result<FakeKube> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let _ = cluster.shared.addr.set(addr);
        let (stop, stopped) = oneshot::channel::<()>();
        let app = server::router(cluster.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(FakeKube {
            cluster,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A clone of the cluster handle (for moving into tasks and hooks).
    pub fn cluster(&self) -> Cluster {
        self.cluster.clone()
    }

    /// A kubeconfig for this server: cluster `fakekube` at `url()` over
    /// plain HTTP, context `fakekube` with namespace `default`, user with a
    /// dummy bearer token (the fake checks no credentials).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: fakekube\n\
             \x20 cluster:\n\
             \x20   server: {url}\n\
             contexts:\n\
             - name: fakekube\n\
             \x20 context:\n\
             \x20   cluster: fakekube\n\
             \x20   namespace: default\n\
             \x20   user: fakekube\n\
             current-context: fakekube\n\
             users:\n\
             - name: fakekube\n\
             \x20 user:\n\
             \x20   token: fakekube-token\n\
             preferences: {{}}\n",
            url = self.url()
        )
    }

    /// Write [`kubeconfig`](Self::kubeconfig) to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Stop serving: close watches, stop accepting, wait (a little) for
    /// open connections to end.
    pub async fn shutdown(mut self) {
        self.cluster.drop_watches();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            // Idle keep-alive connections close at once; give busy ones a moment.
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.cluster.drop_watches();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
