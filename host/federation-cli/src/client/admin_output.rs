//! How the `adapters` command prints what AdminService answered: adapter statuses,
//! their versions, registry sources and rejections, as text or as JSON.

use federation_proto::{ListAdaptersResponse, ReloadAdaptersResponse};

use super::output::print_json;

/// Prints what `adapters list` got: the adapters, the registry sources and the
/// rejections.
pub(super) fn print_listing(r: &ListAdaptersResponse, json: bool) {
    if json {
        print_json(&serde_json::json!({
            "adapters": r.adapters.iter().map(status_json).collect::<Vec<_>>(),
            "rejected_total": r.rejected_total,
            "rejections": r.rejections.iter().map(rejection_json).collect::<Vec<_>>(),
            "sources": r.sources.iter().map(source_json).collect::<Vec<_>>(),
        }));
        return;
    }
    for adapter in &r.adapters {
        print_status(adapter);
    }
    for source in &r.sources {
        print_source(source);
    }
    println!("rejected since start: {}", r.rejected_total);
    for rejection in &r.rejections {
        print_rejection(rejection);
    }
}

/// Prints what `adapters reload` changed.
pub(super) fn print_reload(r: &ReloadAdaptersResponse, json: bool) {
    if json {
        print_json(&serde_json::json!({
            "loaded": r.loaded.iter().map(version_json).collect::<Vec<_>>(),
            "unloaded": r.unloaded,
            "rejected": r.rejected.iter().map(rejection_json).collect::<Vec<_>>(),
        }));
        return;
    }
    for loaded in &r.loaded {
        println!("loaded   {}", describe_version(loaded));
    }
    for name in &r.unloaded {
        println!("unloaded {name}");
    }
    for rejection in &r.rejected {
        print_rejection(rejection);
    }
    if r.loaded.is_empty() && r.unloaded.is_empty() && r.rejected.is_empty() {
        println!("no changes");
    }
}

/// Prints one adapter's status (as JSON with `json`).
pub(super) fn print_adapter(status: &federation_proto::AdapterStatus, json: bool) {
    if json {
        print_json(&status_json(status));
    } else {
        print_status(status);
    }
}

fn version_json(v: &federation_proto::AdapterVersion) -> serde_json::Value {
    serde_json::json!({
        "name": v.name,
        "version": v.version,
        "digest": v.digest,
        "source": v.source,
        "tasks_served": v.tasks_served,
        "load_us": v.load_us,
        "from_cache": v.from_cache,
    })
}

fn status_json(status: &federation_proto::AdapterStatus) -> serde_json::Value {
    let state = federation_proto::adapter_status::State::try_from(status.state)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN");
    serde_json::json!({
        "name": status.name,
        "state": state,
        "current": status.current.as_ref().map(version_json),
        "previous": status.previous.as_ref().map(version_json),
        "last_error": status.last_error,
        "source": status.source,
        "desired_digest": status.desired_digest,
        "serving_digest": status.current.as_ref().map(|c| c.digest.clone()),
        "converged_at": status.converged_at.as_ref().map(ToString::to_string),
    })
}

fn source_json(source: &federation_proto::AdapterSource) -> serde_json::Value {
    serde_json::json!({
        "name": source.name,
        "reference": source.reference,
        "pinned": source.pinned,
        "manifest_digest": source.manifest_digest,
        "desired_digest": source.desired_digest,
        "serving_digest": source.serving_digest,
        "converged_at": source.converged_at.as_ref().map(ToString::to_string),
        "registry_reachable": source.registry_reachable,
        "last_error": source.last_error,
        "last_poll_at": source.last_poll_at.as_ref().map(ToString::to_string),
    })
}

fn rejection_json(rejection: &federation_proto::Rejection) -> serde_json::Value {
    serde_json::json!({
        "source": rejection.source,
        "digest": rejection.digest,
        "reason": rejection.reason,
    })
}

fn describe_version(v: &federation_proto::AdapterVersion) -> String {
    format!(
        "{} {} sha256:{:.12} from {} ({} tasks, loaded in {} µs{})",
        v.name,
        v.version,
        v.digest,
        v.source,
        v.tasks_served,
        v.load_us,
        if v.from_cache { ", cached" } else { "" }
    )
}

fn print_status(status: &federation_proto::AdapterStatus) {
    let state = federation_proto::adapter_status::State::try_from(status.state)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN");
    println!("{} [{state}]", status.name);
    if let Some(current) = &status.current {
        println!("  current  {}", describe_version(current));
    }
    if let Some(previous) = &status.previous {
        println!("  previous {}", describe_version(previous));
    }
    if !status.last_error.is_empty() {
        println!("  last update rejected: {}", status.last_error);
    }
    if !status.source.is_empty() {
        let converged = match &status.converged_at {
            Some(at) => format!("converged at {at}"),
            None => "NOT converged".to_string(),
        };
        println!(
            "  source   {} wants sha256:{:.12} ({converged})",
            status.source, status.desired_digest
        );
    }
}

fn print_source(source: &federation_proto::AdapterSource) {
    let converged = match &source.converged_at {
        Some(at) => format!("converged at {at}"),
        None => "NOT converged".to_string(),
    };
    let registry = if source.registry_reachable {
        "registry up"
    } else {
        "REGISTRY UNREACHABLE"
    };
    println!(
        "source {} <- {} [{registry}]\n  desired sha256:{:.12}  serving sha256:{:.12}  {converged}",
        source.name, source.reference, source.desired_digest, source.serving_digest
    );
    if !source.last_error.is_empty() {
        println!("  last error: {}", source.last_error);
    }
}

fn print_rejection(rejection: &federation_proto::Rejection) {
    println!(
        "rejected {} sha256:{:.12}: {}",
        rejection.source, rejection.digest, rejection.reason
    );
}
