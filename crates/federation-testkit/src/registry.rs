//! A real OCI registry (Debian's `docker-registry`, the CNCF distribution server) on a
//! loopback port, with its configuration and storage in a directory the caller owns.
//! It can be stopped and started again on the same port and storage, to play a
//! registry outage. `scripts/test.sh` installs the package when it is missing.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Context;

use crate::process::{Launch, Process, free_port};

/// The registry binary: `FEDERATION_TEST_REGISTRY_BIN`, else `docker-registry` on PATH.
fn binary() -> PathBuf {
    std::env::var_os("FEDERATION_TEST_REGISTRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("docker-registry"))
}

pub struct OciRegistry {
    config: PathBuf,
    log: PathBuf,
    port: u16,
    process: Option<Process>,
}

impl OciRegistry {
    /// Starts a registry storing into `dir` (created) on a free loopback port, and
    /// waits until it answers `GET /v2/`.
    pub fn start(dir: &Path) -> anyhow::Result<OciRegistry> {
        std::fs::create_dir_all(dir.join("storage"))?;
        let port = free_port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.join("storage").display()
            ),
        )?;
        let mut registry = OciRegistry {
            config,
            log: dir.join("registry.log"),
            port,
            process: None,
        };
        registry.resume()?;
        Ok(registry)
    }

    /// `127.0.0.1:PORT`, as `oci://` references and `--insecure-registry` take it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGKILL); nothing answers on its port until [`OciRegistry::resume`].
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts it again on the same port and storage.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(binary());
        command.arg("serve").arg(&self.config);
        let mut process = Launch::new("docker-registry", command, &self.log)
            .start()
            .context("starting docker-registry (apt-get install docker-registry, or run scripts/test.sh)")?;
        process.wait_http_ok(self.port, "/v2/", Duration::from_secs(30));
        self.process = Some(process);
        Ok(())
    }
}
