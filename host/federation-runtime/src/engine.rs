//! The shared wasmtime engine: component model, async, pooling allocator, and an epoch
//! ticker that lets the host bound a guest's time.

use std::time::Duration;

use anyhow::Context;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the engine's epoch advances. A running guest checks its deadline (and
/// yields to the tokio scheduler) once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Engine sizing, from the host's configuration.
#[derive(Clone, Debug)]
pub struct EngineLimits {
    /// Adapter instances that may exist at once (the pooling allocator's slots).
    pub max_instances: u32,
    /// Largest linear memory one adapter instance may grow to, bytes.
    pub max_memory_bytes: usize,
}

/// Builds the engine and starts its epoch ticker thread (one per process).
pub fn build_engine(limits: &EngineLimits) -> anyhow::Result<Engine> {
    let engine = Engine::new(&config(limits))
        .map_err(anyhow::Error::from)
        .context("creating the wasmtime engine")?;
    start_epoch_ticker(&engine)?;
    Ok(engine)
}

/// The host's engine configuration: component model, async, epoch interruption and
/// the pooling allocator sized by `limits` (benchmarks vary it from here).
pub fn config(limits: &EngineLimits) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    // A Rust wasip2 component holds a few core instances (main module + WASI adapter
    // shims), each with its own memory and tables.
    pool.total_component_instances(limits.max_instances)
        .total_core_instances(limits.max_instances * 4)
        .total_memories(limits.max_instances * 2)
        .total_tables(limits.max_instances * 4)
        .max_memory_size(limits.max_memory_bytes)
        .total_stacks(limits.max_instances)
        // Keep the first pages of a freed slot resident instead of returning them to
        // the kernel (madvise) after every task: halves the per-task hop (page faults
        // and TLB shootdowns dominated it) for ~6 MiB more warm idle RSS.
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(64 << 10)
        .async_stack_keep_resident(128 << 10)
        .pagemap_scan(wasmtime::Enabled::Auto);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] on a thread of its own, for as long
/// as the engine lives.
pub fn start_epoch_ticker(engine: &Engine) -> anyhow::Result<()> {
    let ticker = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .context("starting the epoch ticker")?;
    Ok(())
}
