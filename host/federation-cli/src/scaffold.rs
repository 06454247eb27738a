//! `agent-federation adapter new NAME`: a new Rust adapter crate from the template in
//! `templates/rust-adapter` (embedded in the binary), renamed, with its SDK dependency
//! pointing at a checkout's `adapters/sdk`. The result builds with one command.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The template's files, as shipped in this repository.
const TEMPLATE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../../templates/rust-adapter/Cargo.toml"),
    ),
    (
        "Cargo.lock",
        include_str!("../../../templates/rust-adapter/Cargo.lock"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../templates/rust-adapter/src/lib.rs"),
    ),
    (
        "README.md",
        include_str!("../../../templates/rust-adapter/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../../templates/rust-adapter/.gitignore"),
    ),
];

/// The template's backend name and the SDK dependency line it ships with.
const TEMPLATE_NAME: &str = "my-adapter";
const TEMPLATE_SDK: &str = r#"federation-adapter-sdk = { path = "../../adapters/sdk" }"#;

pub struct NewArgs {
    pub name: String,
    /// Where to create the crate (default `./NAME`); must not exist or be empty.
    pub dir: Option<PathBuf>,
    /// The SDK crate (`adapters/sdk` of an agent-federation checkout); default: found
    /// by walking up from the current directory.
    pub sdk: Option<PathBuf>,
}

/// Writes the new crate; returns its directory.
pub fn new_adapter(args: NewArgs) -> anyhow::Result<PathBuf> {
    if !name_is_valid(&args.name) {
        bail!(
            "{:?} is not a valid adapter name: 1..64 of [a-z0-9-], starting with a letter",
            args.name
        );
    }
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && dir.read_dir()?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    let sdk = match args.sdk {
        Some(sdk) => sdk,
        None => find_sdk(&std::env::current_dir()?).context(
            "no adapters/sdk found above the current directory: \
             pass --sdk PATH (adapters/sdk of an agent-federation checkout)",
        )?,
    };
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("the SDK at {}", sdk.display()))?;
    if !sdk.join("Cargo.toml").is_file() {
        bail!("{} has no Cargo.toml: not the SDK crate", sdk.display());
    }
    let sdk_line = format!(
        "federation-adapter-sdk = {{ path = {:?} }}",
        sdk.display().to_string()
    );
    let crate_name = args.name.replace('-', "_");
    for (path, text) in TEMPLATE {
        let text = text
            .replace(TEMPLATE_SDK, &sdk_line)
            .replace(TEMPLATE_NAME, &args.name)
            .replace("my_adapter", &crate_name);
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().expect("a file in the crate"))?;
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(dir)
}

/// The same rule the host applies to `describe().name`, plus a leading letter so the
/// name is also a valid Cargo package name.
fn name_is_valid(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `adapters/sdk` in `start` or one of its parents.
fn find_sdk(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join("adapters/sdk"))
        .find(|sdk| sdk.join("Cargo.toml").is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_still_has_what_the_scaffold_replaces() {
        let cargo = TEMPLATE[0].1;
        assert!(cargo.contains(TEMPLATE_SDK), "{cargo}");
        assert!(cargo.contains(&format!("name = \"{TEMPLATE_NAME}\"")));
    }

    #[test]
    fn writes_a_renamed_crate_pointing_at_the_sdk() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../adapters/sdk");
        let out = new_adapter(NewArgs {
            name: "weather-agent".into(),
            dir: Some(dir.path().join("weather")),
            sdk: Some(sdk.clone()),
        })
        .unwrap();
        let cargo = std::fs::read_to_string(out.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"weather-agent\""), "{cargo}");
        let sdk_path = sdk.canonicalize().unwrap().display().to_string();
        assert!(cargo.contains(&format!("path = {sdk_path:?}")), "{cargo}");
        assert!(!cargo.contains("my-adapter"));
        let lock = std::fs::read_to_string(out.join("Cargo.lock")).unwrap();
        assert!(lock.contains("name = \"weather-agent\""));
        let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
        assert!(readme.contains("weather_agent.wasm"), "{readme}");
        assert!(out.join("src/lib.rs").is_file() && out.join(".gitignore").is_file());

        // Not over an existing crate, not with a bad name.
        let again = new_adapter(NewArgs {
            name: "weather-agent".into(),
            dir: Some(out.clone()),
            sdk: Some(sdk.clone()),
        });
        assert!(again.unwrap_err().to_string().contains("not empty"));
        for bad in ["", "Weather", "9lives", "a_b", &"a".repeat(65)] {
            let result = new_adapter(NewArgs {
                name: bad.into(),
                dir: Some(dir.path().join("bad")),
                sdk: Some(sdk.clone()),
            });
            assert!(result.is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn finds_the_sdk_above_the_current_directory() {
        let inside = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let found = find_sdk(&inside).unwrap();
        assert!(found.ends_with("adapters/sdk"));
        assert!(find_sdk(Path::new("/")).is_none());
    }
}
