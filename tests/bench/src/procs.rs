//! What `/proc` says about the servers under test (started by the test kit's process
//! harness, so each one's memory and CPU time can be read apart from the load
//! client's) and about the machine.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};

/// Threads a process runs (tokio workers, blocking pool, epoch ticker, ...).
pub fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// Memory figures of a process from `/proc/PID/status`, KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Resident set now (`VmRSS` = anon + file + shmem).
    pub rss: u64,
    /// Peak resident set (`VmHWM`).
    pub hwm: u64,
    /// Anonymous resident pages (`RssAnon`): heap, stacks, touched wasm memory.
    pub anon: u64,
    /// Resident shared-memory pages (`RssShmem`): wasmtime's copy-on-write memory
    /// images are memfd mappings, counted once per mapping.
    pub shmem: u64,
}

impl Memory {
    pub fn of(pid: u32) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Ok(Memory {
            rss: field("VmRSS:"),
            hwm: field("VmHWM:"),
            anon: field("RssAnon:"),
            shmem: field("RssShmem:"),
        })
    }
}

/// User + system CPU time a process has used (`/proc/PID/stat`).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / per_second))
}

/// The machine: CPU model, online CPUs, kernel.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cpus} CPUs available, Linux {}", kernel.trim())
}

/// The `agent-federation` binary next to this one (both built by
/// `cargo build --release -p federation-cli -p federation-bench`).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().unwrap_or(Path::new(".")).join(name);
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p federation-cli -p federation-bench` \
             (scripts/bench.sh does) or pass --host-bin",
            path.display()
        );
    }
    Ok(path)
}
