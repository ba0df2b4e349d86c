//! Tenancy guard: which namespaces may invalidate which distributions.
//!
//! In a shared cluster, anyone who can create a CloudFrontInvalidation could otherwise spend
//! money on any distribution the operator's IAM role reaches. The policy is set by cluster
//! administrators, never by namespace users: in `namespace-annotation` mode a namespace may
//! invalidate only the distributions listed in an annotation on the Namespace object (which
//! namespace users cannot edit under normal RBAC). `open` (the default) allows everything and is
//! right for single-tenant clusters.
//!
//! Distribution tenants (CloudFront SaaS Manager) are allowed the same way, by a second
//! annotation. Allowing a distribution does not allow its tenants: a tenant is usually another
//! customer's site, and telling a tenant's distribution would take a GetDistributionTenant call
//! (and permission) per tenant; an administrator who means "every tenant" writes `*`.

use clap::ValueEnum;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    core::PartialObjectMeta,
    runtime::reflector::{ObjectRef, Store},
};

use cfinv_api::crd::Target;

/// The annotation on a Namespace that lists the distributions its objects may invalidate:
/// comma- or space-separated ids, or `*` for any.
pub const ALLOWED_DISTRIBUTIONS_ANNOTATION: &str =
    "cloudfront.invalidation.io/allowed-distributions";

/// The annotation on a Namespace that lists the distribution tenants its objects may
/// invalidate: comma- or space-separated tenant ids (`dt_…`), or `*` for any.
pub const ALLOWED_DISTRIBUTION_TENANTS_ANNOTATION: &str =
    "cloudfront.invalidation.io/allowed-distribution-tenants";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum TenancyMode {
    /// Every namespace may invalidate every distribution (single-tenant clusters).
    #[default]
    Open,
    /// A namespace may invalidate the distributions its annotation lists.
    NamespaceAnnotation,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Not allowed; the message says who can grant it and how.
    Denied(String),
    /// The namespace cache has not synced yet: ask again shortly.
    NotYetKnown,
}

/// The policy in force, with the namespace cache it reads in annotation mode.
#[derive(Clone, Default)]
pub struct TenancyGuard {
    mode: TenancyMode,
    namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
}

impl TenancyGuard {
    pub fn open() -> Self {
        Self::default()
    }

    /// Annotation mode, reading Namespace metadata from a reflector's store (a watch, so a
    /// reconcile never makes an API call to decide).
    pub fn namespace_annotation(namespaces: Store<PartialObjectMeta<Namespace>>) -> Self {
        Self {
            mode: TenancyMode::NamespaceAnnotation,
            namespaces: Some(namespaces),
        }
    }

    pub fn check(&self, namespace: &str, distribution: &str) -> Decision {
        self.check_target(namespace, &Target::Distribution(distribution.to_owned()))
    }

    /// May `namespace` invalidate `target`? Distributions are read from
    /// [`ALLOWED_DISTRIBUTIONS_ANNOTATION`], tenants from
    /// [`ALLOWED_DISTRIBUTION_TENANTS_ANNOTATION`] only.
    pub fn check_target(&self, namespace: &str, target: &Target) -> Decision {
        let store = match (self.mode, &self.namespaces) {
            (TenancyMode::Open, _) => return Decision::Allowed,
            (TenancyMode::NamespaceAnnotation, None) => return Decision::NotYetKnown,
            (TenancyMode::NamespaceAnnotation, Some(store)) => store,
        };
        if store.is_empty() {
            // Every cluster has namespaces: an empty cache has not synced.
            return Decision::NotYetKnown;
        }
        // An object's namespace exists; when the cache lacks it, its watch event has not
        // arrived yet (a namespace and its objects applied together): wait, never deny.
        let Some(ns) = store.get(&ObjectRef::new(namespace)) else {
            return Decision::NotYetKnown;
        };
        let key = annotation_for(target);
        let annotation = ns
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key).cloned());
        if allows(annotation.as_deref(), target.id()) {
            Decision::Allowed
        } else {
            Decision::Denied(denied_message(namespace, target, annotation.as_deref()))
        }
    }
}

/// The annotation that lists targets of this kind.
pub fn annotation_for(target: &Target) -> &'static str {
    match target {
        Target::Distribution(_) => ALLOWED_DISTRIBUTIONS_ANNOTATION,
        Target::Tenant(_) => ALLOWED_DISTRIBUTION_TENANTS_ANNOTATION,
    }
}

/// Does an annotation value allow this distribution?
pub fn allows(annotation: Option<&str>, distribution: &str) -> bool {
    annotation.is_some_and(|value| {
        value
            .split([',', ' ', '\n', '\t'])
            .map(str::trim)
            .any(|item| item == "*" || item == distribution)
    })
}

fn denied_message(namespace: &str, target: &Target, annotation: Option<&str>) -> String {
    let key = annotation_for(target);
    let id = target.id();
    let now = match annotation {
        Some(v) => format!("it allows only {v:?}"),
        None => "it has none".to_owned(),
    };
    let kind = match target {
        Target::Distribution(_) => "the distribution",
        // Said explicitly: allowing the tenant's distribution is not enough.
        Target::Tenant(_) => "the tenant (allowing its distribution does not allow its tenants)",
    };
    format!(
        "namespace {namespace} may not invalidate {target}: the operator's tenancy policy \
         requires {kind} in the annotation {key} on namespace {namespace}, and {now}. A cluster \
         administrator can grant it with: kubectl annotate namespace {namespace} --overwrite \
         {key}={id}; then create a new CloudFrontInvalidation"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::{reflector, watcher};

    #[test]
    fn annotation_lists_distributions_or_a_star() {
        assert!(allows(Some("E1,E2"), "E2"));
        assert!(allows(Some("E1, E2"), "E2"));
        assert!(allows(Some("E1 E2"), "E1"));
        assert!(allows(Some("*"), "EANY"));
        assert!(!allows(Some("E1,E2"), "E3"));
        assert!(!allows(Some("E12"), "E1"), "no prefix matching");
        assert!(!allows(Some(""), "E1"));
        assert!(!allows(None, "E1"));
    }

    #[test]
    fn open_mode_allows_everything() {
        assert_eq!(TenancyGuard::open().check("any", "E1"), Decision::Allowed);
    }

    fn namespace(name: &str, annotation: Option<&str>) -> PartialObjectMeta<Namespace> {
        let mut ns = PartialObjectMeta::<Namespace>::default();
        ns.metadata.name = Some(name.to_owned());
        if let Some(a) = annotation {
            ns.metadata.annotations = Some(
                [(ALLOWED_DISTRIBUTIONS_ANNOTATION.to_owned(), a.to_owned())]
                    .into_iter()
                    .collect(),
            );
        }
        ns
    }

    #[test]
    fn annotation_mode_reads_the_namespace_cache() {
        let (reader, mut writer) = reflector::store();
        let guard = TenancyGuard::namespace_annotation(reader);
        assert_eq!(guard.check("web", "E1"), Decision::NotYetKnown);

        writer.apply_watcher_event(&watcher::Event::Apply(namespace("web", Some("E1"))));
        writer.apply_watcher_event(&watcher::Event::Apply(namespace("shop", None)));
        assert_eq!(guard.check("web", "E1"), Decision::Allowed);
        let Decision::Denied(message) = guard.check("shop", "E1") else {
            panic!("shop has no annotation");
        };
        assert!(
            message.contains("kubectl annotate namespace shop"),
            "{message}"
        );
        assert!(message.contains("cluster administrator"), "{message}");
        assert!(matches!(guard.check("web", "E2"), Decision::Denied(_)));
        assert_eq!(
            guard.check("created-just-now", "E1"),
            Decision::NotYetKnown,
            "a namespace the cache has not seen yet is not denied"
        );
    }

    fn namespace_with(name: &str, annotations: &[(&str, &str)]) -> PartialObjectMeta<Namespace> {
        let mut ns = PartialObjectMeta::<Namespace>::default();
        ns.metadata.name = Some(name.to_owned());
        ns.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        ns
    }

    #[test]
    fn allowing_a_distribution_does_not_allow_its_tenants() {
        let (reader, mut writer) = reflector::store();
        let guard = TenancyGuard::namespace_annotation(reader);
        writer.apply_watcher_event(&watcher::Event::Apply(namespace_with(
            "web",
            &[(ALLOWED_DISTRIBUTIONS_ANNOTATION, "*")],
        )));
        writer.apply_watcher_event(&watcher::Event::Apply(namespace_with(
            "saas",
            &[(ALLOWED_DISTRIBUTION_TENANTS_ANNOTATION, "dt_alpha, dt_beta")],
        )));
        let alpha = Target::Tenant("dt_alpha".into());
        // `*` for distributions covers every distribution and no tenant.
        assert_eq!(guard.check("web", "E1"), Decision::Allowed);
        let Decision::Denied(message) = guard.check_target("web", &alpha) else {
            panic!("distributions do not grant tenants");
        };
        assert!(
            message.contains(ALLOWED_DISTRIBUTION_TENANTS_ANNOTATION)
                && message.contains("does not allow its tenants")
                && message.contains("kubectl annotate namespace web"),
            "{message}"
        );
        // Tenants are listed by id; a tenant list grants no distribution.
        assert_eq!(guard.check_target("saas", &alpha), Decision::Allowed);
        assert_eq!(
            guard.check_target("saas", &Target::Tenant("dt_beta".into())),
            Decision::Allowed
        );
        assert!(matches!(
            guard.check_target("saas", &Target::Tenant("dt_gamma".into())),
            Decision::Denied(_)
        ));
        assert!(matches!(guard.check("saas", "E1"), Decision::Denied(_)));
        assert_eq!(
            TenancyGuard::open().check_target("any", &alpha),
            Decision::Allowed
        );
    }
}
