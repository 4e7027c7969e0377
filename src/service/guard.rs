//! The guard's rate limiters: governor's limiters over the shared clock, in
//! memory, and the breaker. The policy they serve (namespace lists, cluster
//! check, change correlation, GitOps verdicts, [`Limit`] parsing) is pure and
//! lives in `core::guard`; [`Guard`] delegates those checks to it.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock as GovernorClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use jiff::Timestamp;

use crate::core::clock::Clock;
use crate::core::decide::Target;
use crate::core::guard::{GuardConfig, Limit, Refusal};
use crate::core::parse::LabelSet;

/// governor's quota for a [`Limit`]: one cell every `per / count`, up to
/// `burst` at once.
fn quota(limit: &Limit) -> Quota {
    let cell = limit.per / limit.count;
    Quota::with_period(cell.max(Duration::from_nanos(1)))
        .expect("period above zero")
        .allow_burst(NonZeroU32::new(limit.burst).expect("burst above zero"))
}

/// governor's view of rollbackd's clock, so limits follow the same time as
/// everything else (and tests move it by hand).
#[derive(Clone)]
pub struct GuardClock(pub Arc<dyn Clock>);

impl GovernorClock for GuardClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let ns = self.0.now().as_nanosecond();
        Nanos::from(u64::try_from(ns).unwrap_or(0))
    }
}

type Keyed = RateLimiter<String, DefaultKeyedStateStore<String>, GuardClock, NoOpMiddleware<Nanos>>;
type Direct = RateLimiter<NotKeyed, InMemoryState, GuardClock, NoOpMiddleware<Nanos>>;

/// The guard's state: limiters and the breaker.
pub struct Guard {
    /// The configuration.
    pub config: GuardConfig,
    clock: GuardClock,
    workload: Option<Keyed>,
    namespace: Option<Keyed>,
    cluster: Option<Direct>,
    /// The breaker was open at the last check (so only the first refusal is
    /// loud).
    breaker_open: Mutex<bool>,
}

impl Guard {
    /// Builds limiters for `config` on `clock`.
    pub fn new(config: GuardConfig, clock: Arc<dyn Clock>) -> Guard {
        let clock = GuardClock(clock);
        let keyed = |l: &Option<Limit>| {
            l.map(|l| RateLimiter::new(quota(&l), DefaultKeyedStateStore::default(), clock.clone()))
        };
        Guard {
            workload: keyed(&config.workload_limit),
            namespace: keyed(&config.namespace_limit),
            cluster: config
                .cluster_limit
                .map(|l| RateLimiter::direct_with_clock(quota(&l), clock.clone())),
            breaker_open: Mutex::new(false),
            clock,
            config,
        }
    }

    /// Whether the alert is about this cluster (see
    /// [`GuardConfig::check_cluster`]).
    pub fn check_cluster(
        &self,
        cluster_name: Option<&str>,
        labels: &LabelSet,
    ) -> Result<(), Refusal> {
        self.config.check_cluster(cluster_name, labels)
    }

    /// Whether rollbacks may happen in `namespace` (see
    /// [`GuardConfig::check_namespace`]).
    pub fn check_namespace(&self, namespace: &str) -> Result<(), Refusal> {
        self.config.check_namespace(namespace)
    }

    /// Change correlation (see [`GuardConfig::check_change`]).
    pub fn check_change(
        &self,
        alert_started: Timestamp,
        deployed_at: Option<Timestamp>,
    ) -> Result<(), Refusal> {
        self.config.check_change(alert_started, deployed_at)
    }

    /// Spends one rollback of each budget, or says which is spent.
    ///
    /// Cluster first, then namespace, then workload: governor cannot look
    /// without spending, so a rollback refused by a later budget has spent
    /// a cell of the earlier ones. In this order the loss only ever makes
    /// rollbackd roll back less, and a storm that opens the breaker spends
    /// nothing of the workload and namespace budgets.
    pub fn take_budget(&self, target: &Target) -> Result<(), Refusal> {
        let now = self.clock.now();
        let wait = |not_until: governor::NotUntil<Nanos>| -> Duration {
            let earliest = not_until.earliest_possible();
            Duration::from_nanos(earliest.duration_since(now).as_u64())
        };
        {
            let mut open = self.breaker_open.lock().unwrap_or_else(|p| p.into_inner());
            if let (Some(l), Some(limit)) = (&self.cluster, self.config.cluster_limit) {
                if let Err(n) = l.check() {
                    let first = !*open;
                    *open = true;
                    return Err(Refusal::BreakerOpen {
                        limit,
                        retry_in: wait(n),
                        first,
                    });
                }
            }
            *open = false;
        }
        if let (Some(l), Some(limit)) = (&self.namespace, self.config.namespace_limit) {
            l.check_key(&target.namespace)
                .map_err(|n| Refusal::NamespaceLimit {
                    limit,
                    retry_in: wait(n),
                })?;
        }
        if let (Some(l), Some(limit)) = (&self.workload, self.config.workload_limit) {
            l.check_key(&target.to_string())
                .map_err(|n| Refusal::WorkloadLimit {
                    limit,
                    retry_in: wait(n),
                })?;
        }
        Ok(())
    }

    /// Whether the breaker is open (for `/readyz` and metrics).
    pub fn breaker_is_open(&self) -> bool {
        *self.breaker_open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets limiter state that is back to full (keyed limiters keep one
    /// entry per workload and namespace seen; this bounds them in a storm).
    pub fn forget_idle(&self) {
        for l in [&self.workload, &self.namespace].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Entries held by the keyed limiters (memory bound checks).
    pub fn tracked_keys(&self) -> usize {
        [&self.workload, &self.namespace]
            .into_iter()
            .flatten()
            .map(|l| l.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::decide::WorkloadKind;

    struct ManualClock(Mutex<Timestamp>);
    impl Clock for ManualClock {
        fn now(&self) -> Timestamp {
            *self.0.lock().unwrap()
        }
    }
    impl ManualClock {
        fn advance(&self, d: Duration) {
            let mut t = self.0.lock().unwrap();
            *t += d;
        }
    }

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock(Mutex::new(
            "2026-11-22T12:50:00Z".parse().unwrap(),
        )))
    }

    fn target(ns: &str, name: &str) -> Target {
        Target {
            namespace: ns.into(),
            kind: WorkloadKind::Deployment,
            name: name.into(),
            to_revision: None,
        }
    }

    #[test]
    fn workload_budget_refills_with_the_clock() {
        let c = clock();
        let config = GuardConfig {
            namespace_limit: None,
            cluster_limit: None,
            ..Default::default()
        };
        let g = Guard::new(config, c.clone());
        let web = target("shop", "web");
        assert_eq!(g.take_budget(&web), Ok(()));
        let Err(Refusal::WorkloadLimit { retry_in, .. }) = g.take_budget(&web) else {
            panic!()
        };
        assert_eq!(retry_in, Duration::from_secs(600));
        assert_eq!(
            g.take_budget(&target("shop", "api")),
            Ok(()),
            "another workload has its own budget"
        );
        c.advance(Duration::from_secs(599));
        assert!(g.take_budget(&web).is_err());
        c.advance(Duration::from_secs(1));
        assert_eq!(g.take_budget(&web), Ok(()));
    }

    #[test]
    fn breaker_opens_loudly_once_and_closes_when_the_budget_refills() {
        let c = clock();
        let config = GuardConfig {
            workload_limit: None,
            namespace_limit: None,
            cluster_limit: Some(Limit::parse("2 per 10m").unwrap()),
            ..Default::default()
        };
        let g = Guard::new(config, c.clone());
        assert!(g.take_budget(&target("a", "1")).is_ok());
        assert!(g.take_budget(&target("b", "2")).is_ok());
        let firsts: Vec<bool> = (0..3)
            .map(|i| match g.take_budget(&target("c", &i.to_string())) {
                Err(Refusal::BreakerOpen { first, .. }) => first,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(firsts, [true, false, false]);
        assert!(g.breaker_is_open());
        c.advance(Duration::from_secs(300)); // one cell (10m / 2) refilled
        assert!(g.take_budget(&target("d", "1")).is_ok());
        assert!(!g.breaker_is_open(), "closed by itself");
        let Err(Refusal::BreakerOpen { first, .. }) = g.take_budget(&target("d", "2")) else {
            panic!()
        };
        assert!(first, "a new opening is loud again");
    }

    #[test]
    fn keyed_limiter_memory_stays_bounded_under_a_storm() {
        let c = clock();
        let config = GuardConfig {
            cluster_limit: None,
            namespace_limit: Some(Limit::parse("5000 per 10m").unwrap()),
            ..Default::default()
        };
        let g = Guard::new(config, c.clone());
        for i in 0..5000 {
            let _ = g.take_budget(&target(&format!("ns{}", i % 50), &format!("w{i}")));
        }
        assert_eq!(g.tracked_keys(), 5000 + 50);
        c.advance(Duration::from_secs(3600));
        g.forget_idle();
        assert_eq!(g.tracked_keys(), 0);
    }
}
