//! A real OCI registry (Debian's `docker-registry`, the CNCF distribution server) on a
//! loopback port, with its configuration and storage in a directory the caller owns.
//! It can be stopped and started again on the same port and storage, to play a
//! registry outage. `scripts/test.sh` installs the package when it is missing.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
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
        Self::start_with(dir, None, None)
    }

    /// Like [`OciRegistry::start`], requiring basic auth of the users in `htpasswd`
    /// (lines `USER:BCRYPT-HASH`).
    pub fn start_with_auth(dir: &Path, htpasswd: &str) -> anyhow::Result<OciRegistry> {
        Self::start_with(dir, Some(htpasswd), None)
    }

    /// Like [`OciRegistry::start`], serving https only with the PEM certificate (chain)
    /// and key given.
    pub fn start_with_tls(dir: &Path, cert: &Path, key: &Path) -> anyhow::Result<OciRegistry> {
        Self::start_with(dir, None, Some((cert, key)))
    }

    fn start_with(
        dir: &Path,
        htpasswd: Option<&str>,
        tls: Option<(&Path, &Path)>,
    ) -> anyhow::Result<OciRegistry> {
        std::fs::create_dir_all(dir.join("storage"))?;
        let auth = match htpasswd {
            Some(users) => {
                let path = dir.join("htpasswd");
                std::fs::write(&path, users)?;
                format!(
                    "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                    path.display()
                )
            }
            None => String::new(),
        };
        let tls = match tls {
            Some((cert, key)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ),
            None => String::new(),
        };
        let port = free_port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n{tls}{auth}",
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
        wait_answering(&mut process, self.port)?;
        self.process = Some(process);
        Ok(())
    }
}

/// Waits until `GET /v2/` gets an answer: 200, or 401 when auth is on, or 400 (a plain
/// request to an https registry: it listens).
fn wait_answering(process: &mut Process, port: u16) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Some(status) = process.try_wait() {
            anyhow::bail!("docker-registry exited with {status}:\n{}", process.log());
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(stream, "GET /v2/ HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
            let status = reply.split_whitespace().nth(1);
            if reply.starts_with("HTTP/") && matches!(status, Some("200" | "401" | "400")) {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!(
        "docker-registry did not answer on port {port}:\n{}",
        process.log()
    )
}
