//! Install (or update) the CRD through the API and wait until it is served.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::PostParams,
    runtime::{conditions, wait::await_condition},
};

/// Create or replace the CRD, then wait for `Established`. A plain create/replace rather than
/// server-side apply: API servers before 1.25 do not know CEL `x-kubernetes-validations` and
/// drop the field on create/replace, where server-side apply would refuse the object.
pub async fn install_crd(client: &Client, mut crd: CustomResourceDefinition) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().unwrap_or_default();
    match api.get_opt(&name).await? {
        Some(existing) => {
            crd.metadata.resource_version = existing.metadata.resource_version;
            api.replace(&name, &PostParams::default(), &crd).await?;
        }
        None => {
            api.create(&PostParams::default(), &crd).await?;
        }
    }
    let established = await_condition(api, &name, conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(30), established).await??;
    Ok(())
}
