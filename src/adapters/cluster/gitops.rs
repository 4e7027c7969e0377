//! GitOps writes: what rollbackd changes on a GitOps tool's objects so that
//! the tool does not revert a rollback (Flux: suspend reconciliation). Which
//! tool manages a workload is read from its labels in `core::guard`.

use kube::api::{Api, Patch};

use super::undo::{patch_params, DryRun, UndoEngine, UndoError};
use crate::core::guard::GitOpsOwner;

impl UndoEngine {
    /// Suspends a Flux Kustomization or HelmRelease (`spec.suspend: true`,
    /// merge patch, as `flux suspend` does) so it does not revert the
    /// rollback; dry-run asks the API server only.
    pub async fn suspend_flux(
        &self,
        owner: &GitOpsOwner,
        dry_run: DryRun,
    ) -> Result<(), UndoError> {
        let (group, version, kind, plural, namespace, name) = match owner {
            GitOpsOwner::FluxKustomization { namespace, name } => (
                "kustomize.toolkit.fluxcd.io",
                "v1",
                "Kustomization",
                "kustomizations",
                namespace,
                name,
            ),
            GitOpsOwner::FluxHelmRelease { namespace, name } => (
                "helm.toolkit.fluxcd.io",
                "v2",
                "HelmRelease",
                "helmreleases",
                namespace,
                name,
            ),
            GitOpsOwner::ArgoCd { .. } => {
                return Err(UndoError::Api(format!(
                    "{owner} cannot be suspended by rollbackd"
                )))
            }
        };
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.client().clone(), namespace, &resource);
        let patch = serde_json::json!({"spec": {"suspend": true}});
        api.patch(name, &patch_params(dry_run), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(UndoError::from_kube)
    }
}
