//! `adapters push`: publishes an adapter component (and its policy manifest) to an
//! OCI registry.

use anyhow::Context;

use super::exit;
use super::output::print_json;

/// `adapters push`: publishes FILE at REFERENCE; prints the digests.
pub(super) async fn push(
    file: std::path::PathBuf,
    reference: &str,
    policy: Option<std::path::PathBuf>,
    registry: &federation_host::oci_registry::RegistryArgs,
    json: bool,
) -> anyhow::Result<i32> {
    use federation_host::oci_registry::{AdapterRef, Registry};
    let reference = match AdapterRef::parse(reference) {
        Ok(reference) if reference.pinned().is_none() => reference,
        Ok(_) => {
            eprintln!("error: push to a tag (oci://REGISTRY/REPO:TAG), not a digest");
            return Ok(exit::USAGE);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::USAGE);
        }
    };
    let component = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    // A component, not a core module or anything else: `\0asm`, version 0x0d, layer 1.
    if !component.starts_with(b"\0asm\x0d\0\x01\0") {
        eprintln!("error: {} is not a WebAssembly component", file.display());
        return Ok(exit::INVALID);
    }
    let policy_path = policy.or_else(|| {
        let beside = federation_runtime::manifest_path(&file);
        beside.exists().then_some(beside)
    });
    let policy = policy_path
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
        })
        .transpose()?;
    let client = Registry::new(registry, std::time::Duration::from_secs(30))?;
    match client.push(&reference, component, policy).await {
        Ok(pushed) => {
            if json {
                print_json(&serde_json::json!({
                    "reference": reference.to_string(),
                    "manifest_digest": pushed.manifest_digest,
                    "component_digest": pushed.component_digest,
                    "policy": policy_path.map(|p| p.display().to_string()),
                }));
            } else {
                println!(
                    "pushed {reference}\n  manifest  {}\n  component sha256:{}",
                    pushed.manifest_digest, pushed.component_digest
                );
            }
            Ok(exit::OK)
        }
        Err(e) if e.is_denied() => {
            eprintln!("error: PERMISSION_DENIED: {e:#}");
            Ok(exit::DENIED)
        }
        Err(e) => {
            eprintln!("error: UNAVAILABLE: {e:#}");
            Ok(exit::RETRY_LATER)
        }
    }
}
