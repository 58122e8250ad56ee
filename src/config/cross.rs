//! Checks that relate config sections: references, duplicates and bucket-name collisions.
//!
//! Two tenants whose buckets land on the same backend must never be able to name the same
//! backend bucket, or one tenant could read the other's ciphertext listing (and overwrite it).
//! Hence: distinct names, distinct access keys, and per shared backend prefixes of which
//! neither is a prefix of the other.

use std::collections::{BTreeSet, HashMap};

use serde_saphyr::Location;

use super::names::{is_bucket, BUCKET_RULE};
use super::validate::{bucket_route, Ctx, VBackend, VRoute, VTenant};
use super::BucketRoute;

/// Runs every cross-section check, recording problems in `cx`; returns the resolved routes.
pub(super) fn check(
    cx: &mut Ctx<'_>,
    backends: &[VBackend],
    tenants: &[VTenant],
    routes: &[VRoute],
) -> Vec<BucketRoute> {
    unique(cx, "backend name", backends.iter().map(|b| (b.name.as_str(), b.name_at)));
    unique(cx, "tenant name", tenants.iter().map(|t| (t.name.as_str(), t.name_at)));
    unique(cx, "access key id", tenants.iter().flat_map(|t| t.keys.iter().map(|(k, at)| (k.id.as_str(), *at))));

    // Listed in file order, once each, for "unknown backend" messages.
    let mut backend_names: Vec<&str> = Vec::new();
    for b in backends {
        if !backend_names.contains(&b.name.as_str()) {
            backend_names.push(&b.name);
        }
    }
    let known_backend = |cx: &mut Ctx<'_>, name: &str, at: Location| {
        let known = backend_names.contains(&name);
        if !known {
            cx.error(at, format!("unknown backend {name:?} (defined: {})", backend_names.join(", ")));
        }
        known
    };
    for t in tenants {
        if let Some(db) = &t.default_backend {
            known_backend(cx, &db.value, db.referenced);
        }
    }

    // (tenant index, backend) pairs that put buckets on that backend, for the overlap check.
    let mut uses: BTreeSet<(usize, &str)> = BTreeSet::new();
    for (i, t) in tenants.iter().enumerate() {
        if let Some(db) = &t.default_backend {
            uses.insert((i, db.value.as_str()));
        }
    }
    let mut resolved: Vec<(BucketRoute, Location)> = Vec::new();
    let mut seen_bucket: HashMap<(&str, &str), u64> = HashMap::new();
    let mut seen_target: HashMap<(&str, String), u64> = HashMap::new();
    for r in routes {
        let tenant = tenants.iter().position(|t| t.name == r.tenant.value);
        if tenant.is_none() {
            let names: BTreeSet<&str> = tenants.iter().map(|t| t.name.as_str()).collect();
            let names: Vec<&str> = names.into_iter().collect();
            cx.error(
                r.tenant.referenced,
                format!("unknown tenant {:?} (defined: {})", r.tenant.value, names.join(", ")),
            );
        }
        let backend_ok = known_backend(cx, &r.backend.value, r.backend.referenced);
        if let Some(first) = seen_bucket.insert((&r.tenant.value, &r.bucket.value), r.bucket.referenced.line()) {
            cx.error(
                r.bucket.referenced,
                format!("duplicate route for bucket {:?} (first at line {first})", r.bucket.value),
            );
        }
        let (Some(ti), true) = (tenant, backend_ok) else {
            continue;
        };
        uses.insert((ti, r.backend.value.as_str()));
        let (target, at) = match (&r.backend_bucket, tenants.get(ti).and_then(|t| t.prefix.as_ref())) {
            (Some(explicit), _) => (explicit.value.clone(), explicit.referenced),
            (None, Some(prefix)) => {
                let name = format!("{prefix}{}", r.bucket.value);
                if !is_bucket(&name) {
                    cx.error(
                        r.bucket.referenced,
                        format!("backend bucket {name:?} (bucket_prefix + bucket) is invalid: {BUCKET_RULE}"),
                    );
                    continue;
                }
                (name, r.bucket.referenced)
            }
            (None, None) => continue,
        };
        if let Some(first) = seen_target.insert((&r.backend.value, target.clone()), at.line()) {
            cx.error(
                at,
                format!("backend bucket {target:?} on backend {:?} is already routed (line {first})", r.backend.value),
            );
        }
        resolved.push((bucket_route(r, target), at));
    }

    prefix_overlaps(cx, tenants, &uses);
    route_collisions(cx, tenants, &uses, &resolved);
    resolved.into_iter().map(|(r, _)| r).collect()
}

/// Reports every later occurrence of a name already seen.
pub(super) fn unique<'a>(cx: &mut Ctx<'_>, what: &str, items: impl Iterator<Item = (&'a str, Location)>) {
    let mut first: HashMap<&str, u64> = HashMap::new();
    for (name, at) in items {
        if let Some(line) = first.get(name) {
            cx.error(at, format!("duplicate {what} {name:?} (first at line {line})"));
        } else {
            first.insert(name, at.line());
        }
    }
}

/// Tenants on a shared backend need prefixes of which neither is a prefix of the other.
fn prefix_overlaps(cx: &mut Ctx<'_>, tenants: &[VTenant], uses: &BTreeSet<(usize, &str)>) {
    let mut reported: BTreeSet<(usize, usize)> = BTreeSet::new();
    for &(i, backend) in uses {
        for &(j, other_backend) in uses {
            if j <= i || other_backend != backend || reported.contains(&(i, j)) {
                continue;
            }
            let (Some(a), Some(b)) = (tenants.get(i), tenants.get(j)) else {
                continue;
            };
            let (Some(pa), Some(pb)) = (&a.prefix, &b.prefix) else {
                continue;
            };
            if pa.starts_with(pb.as_str()) || pb.starts_with(pa.as_str()) {
                reported.insert((i, j));
                cx.error(
                    b.prefix_at,
                    format!(
                        "bucket_prefix {pb:?} of tenant {:?} overlaps bucket_prefix {pa:?} of tenant {:?} (line {}) on \
                         shared backend {backend:?}: tenants sharing a backend need prefixes of which neither is a \
                         prefix of the other",
                        b.name,
                        a.name,
                        a.prefix_at.line()
                    ),
                );
            }
        }
    }
}

/// An explicit backend bucket must not fall inside another tenant's prefix on the same backend.
fn route_collisions(
    cx: &mut Ctx<'_>,
    tenants: &[VTenant],
    uses: &BTreeSet<(usize, &str)>,
    routes: &[(BucketRoute, Location)],
) {
    for (route, at) in routes {
        for &(j, backend) in uses {
            let Some(other) = tenants.get(j) else { continue };
            if backend != route.backend || other.name == route.tenant {
                continue;
            }
            // An empty prefix on a shared backend is already reported as an overlap.
            if let Some(prefix) = other.prefix.as_ref().filter(|p| !p.is_empty()) {
                if route.backend_bucket.starts_with(prefix.as_str()) {
                    cx.error(
                        *at,
                        format!(
                            "backend bucket {:?} lies in tenant {:?}'s bucket_prefix {prefix:?} on backend {backend:?}",
                            route.backend_bucket, other.name
                        ),
                    );
                }
            }
        }
    }
}
