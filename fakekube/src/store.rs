//! The object store: JSON objects keyed by (resource, namespace, name), one
//! global resourceVersion counter, and the change history watches replay.
//!
//! Everything here is "raw": no validation, no defaults, no controllers.
//! [`crate::api`] builds the API server's verbs on top, and
//! [`crate::controller`] the controllers.

use crate::controller::ControllerState;
use crate::fields::Owners;
use crate::resources::{ResourceType, RESOURCES};
use crate::util::{self, dig, dig_mut, Clock};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// How many changes the store remembers for watches that resume from a
/// resourceVersion. A watch from an older version gets `410 Expired`, as
/// after an etcd compaction. Ten thousand covers any test and a long
/// benchmark while bounding memory.
pub(crate) const HISTORY_LIMIT: usize = 10_000;

/// Capacity of the change broadcast: a watch that falls this far behind is
/// closed (its client re-lists), as the real watch cache drops slow watchers.
pub(crate) const BROADCAST_CAPACITY: usize = 4096;

/// (resource index in [`RESOURCES`], namespace, name).
pub(crate) type ObjKey = (usize, String, String);

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One committed change, as watches see it.
#[derive(Debug)]
pub(crate) struct Change {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// The resource type of the object.
    pub res: &'static ResourceType,
    /// Added, modified or deleted.
    pub kind: ChangeType,
    /// The object after the change (for a deletion: the last state, carrying
    /// the deletion's resourceVersion).
    pub object: Value,
    /// The object before the change, so selector watches can turn a
    /// modification into ADDED/DELETED when it enters or leaves the selection.
    pub prev: Option<Value>,
}

/// What the broadcast carries to open watches.
#[derive(Debug, Clone)]
pub(crate) enum WatchMsg {
    /// A committed change.
    Change(Arc<Change>),
    /// "Send a BOOKMARK now" (a test asked for it).
    Bookmark,
}

/// The whole cluster state behind one mutex.
pub(crate) struct State {
    /// Every stored object.
    pub objects: BTreeMap<ObjKey, Value>,
    /// The last resourceVersion handed out.
    pub rv: u64,
    /// Recent changes, oldest first, at most [`HISTORY_LIMIT`].
    pub history: VecDeque<Arc<Change>>,
    /// Watches must start at or after this resourceVersion.
    pub compacted_rv: u64,
    /// Seed of uids and generated names (per fake, so two fakes differ).
    seed: u64,
    /// Counter behind uids and generated names.
    counter: u64,
    /// Where committed changes go to open watches.
    pub tx: broadcast::Sender<WatchMsg>,
    /// The clock timestamps come from.
    pub clock: Arc<Clock>,
    /// Rollout modes and progress of the workload controllers.
    pub ctl: ControllerState,
    /// Field ownership of every object (server-side apply).
    pub fields: BTreeMap<ObjKey, Owners>,
}

impl State {
    /// An empty cluster.
    pub(crate) fn new(seed: u64, clock: Arc<Clock>) -> Self {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            compacted_rv: 0,
            seed,
            counter: 0,
            tx,
            clock,
            ctl: ControllerState::default(),
            fields: BTreeMap::new(),
        }
    }

    /// A fresh uid.
    pub(crate) fn new_uid(&mut self) -> String {
        self.counter += 1;
        util::uid(self.seed, self.counter)
    }

    /// A fresh `generateName` suffix.
    pub(crate) fn new_suffix(&mut self) -> String {
        self.counter += 1;
        util::name_suffix(self.seed, self.counter)
    }

    /// The stored object, if any.
    pub(crate) fn get(&self, res: &'static ResourceType, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&key(res, ns, name))
    }

    /// Objects of one type, optionally in one namespace, in key order.
    pub(crate) fn list(&self, res: &'static ResourceType, ns: Option<&str>) -> Vec<&Value> {
        let idx = res.index();
        self.objects
            .range((idx, String::new(), String::new())..)
            .take_while(|((i, _, _), _)| *i == idx)
            .filter(|((_, n, _), _)| ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v)
            .collect()
    }

    /// Store a new object: stamps the next resourceVersion and records ADDED.
    pub(crate) fn commit_create(&mut self, res: &'static ResourceType, mut obj: Value) -> Value {
        self.rv += 1;
        let rv = self.rv;
        dig_mut(&mut obj, &["metadata"]).insert("resourceVersion".into(), json!(rv.to_string()));
        let k = key_of(res, &obj);
        self.objects.insert(k, obj.clone());
        self.record(rv, res, ChangeType::Added, obj.clone(), None);
        obj
    }

    /// Replace a stored object. A write that changes nothing is dropped, as
    /// the API server drops it: no new resourceVersion, no watch event.
    pub(crate) fn commit_update(&mut self, res: &'static ResourceType, mut obj: Value) -> Value {
        let k = key_of(res, &obj);
        let prev = self.objects.get(&k).cloned();
        if let Some(p) = &prev {
            let mut same = obj.clone();
            dig_mut(&mut same, &["metadata"]).insert(
                "resourceVersion".into(),
                p["metadata"]["resourceVersion"].clone(),
            );
            if &same == p {
                return p.clone();
            }
        }
        self.rv += 1;
        let rv = self.rv;
        dig_mut(&mut obj, &["metadata"]).insert("resourceVersion".into(), json!(rv.to_string()));
        self.objects.insert(k, obj.clone());
        let kind = if prev.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.record(rv, res, kind, obj.clone(), prev);
        obj
    }

    /// Remove an object; the DELETED event carries a new resourceVersion.
    pub(crate) fn commit_delete(
        &mut self,
        res: &'static ResourceType,
        ns: &str,
        name: &str,
    ) -> Option<Value> {
        self.fields.remove(&key(res, ns, name));
        let mut obj = self.objects.remove(&key(res, ns, name))?;
        self.rv += 1;
        let rv = self.rv;
        dig_mut(&mut obj, &["metadata"]).insert("resourceVersion".into(), json!(rv.to_string()));
        self.record(rv, res, ChangeType::Deleted, obj.clone(), None);
        Some(obj)
    }

    /// Store an object exactly as given (seeding from `kubectl get -o json`):
    /// its resourceVersion is kept and the counter moves past it; missing
    /// uid/creationTimestamp/resourceVersion are filled in.
    pub(crate) fn seed_verbatim(&mut self, res: &'static ResourceType, mut obj: Value) -> Value {
        let rv: Option<u64> = dig(&obj, &["metadata", "resourceVersion"])
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        if dig(&obj, &["metadata", "uid"]).is_none() {
            let uid = self.new_uid();
            dig_mut(&mut obj, &["metadata"]).insert("uid".into(), json!(uid));
        }
        if dig(&obj, &["metadata", "creationTimestamp"]).is_none() {
            let now = self.clock.rfc3339();
            dig_mut(&mut obj, &["metadata"]).insert("creationTimestamp".into(), json!(now));
        }
        let rv = match rv {
            Some(rv) => {
                self.rv = self.rv.max(rv);
                rv
            }
            None => {
                self.rv += 1;
                self.rv
            }
        };
        dig_mut(&mut obj, &["metadata"]).insert("resourceVersion".into(), json!(rv.to_string()));
        let k = key_of(res, &obj);
        let prev = self.objects.insert(k, obj.clone());
        let kind = if prev.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.record(rv, res, kind, obj.clone(), prev);
        obj
    }

    fn record(
        &mut self,
        rv: u64,
        res: &'static ResourceType,
        kind: ChangeType,
        object: Value,
        prev: Option<Value>,
    ) {
        let change = Arc::new(Change {
            rv,
            res,
            kind,
            object,
            prev,
        });
        self.history.push_back(change.clone());
        while self.history.len() > HISTORY_LIMIT {
            if let Some(old) = self.history.pop_front() {
                self.compacted_rv = old.rv;
            }
        }
        // No open watch is not an error.
        let _ = self.tx.send(WatchMsg::Change(change));
    }
}

/// The store key of an object of `res` in `ns` named `name`.
pub(crate) fn key(res: &'static ResourceType, ns: &str, name: &str) -> ObjKey {
    let ns = if res.namespaced { ns } else { "" };
    (res.index(), ns.to_string(), name.to_string())
}

/// The store key of a stored-shape object.
pub(crate) fn key_of(res: &'static ResourceType, obj: &Value) -> ObjKey {
    key(
        res,
        util::dig_str(obj, &["metadata", "namespace"]),
        util::dig_str(obj, &["metadata", "name"]),
    )
}

/// All resource types, for callers that walk everything (garbage collection).
pub(crate) fn all_types() -> impl Iterator<Item = &'static ResourceType> {
    RESOURCES.iter()
}
