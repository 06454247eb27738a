//! The host before it listens: from the serve flags, the outbound client (to the
//! wrapper, with its credential), the sandbox defaults, the engine and adapter
//! runtime, the lifecycle with its adapters loaded (and registry sources polled once),
//! the FederationService over an executor and, when a token is set, the AdminService.
//! The tonic wiring that serves them is in the parent module.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use tonic_health::server::HealthReporter;

use federation_runtime::engine::{EngineLimits, build_engine};
use federation_runtime::outbound::{
    HostCredential, NetSettings, Origin, OutboundHttp, OutboundLimits,
};
use federation_runtime::{
    AdapterRegistry, AdapterRuntime, CompileCache, PolicyDefaults, SecretSources,
};

use super::health::BackendHealth;
use crate::admin::{Admin, AdminToken};
use crate::config::ServeArgs;
use crate::lifecycle::AdapterLifecycle;
use crate::lifecycle::registry_sources::RegistrySources;
use crate::oci_registry::Registry;
use crate::service::{Executor, Federation, ServiceConfig};

/// What one host serves, built and loaded, not yet listening.
pub(super) struct Host<E: Executor> {
    pub registry: Arc<AdapterRegistry>,
    pub lifecycle: Arc<AdapterLifecycle>,
    pub sources: Option<Arc<RegistrySources>>,
    pub federation: Federation<E>,
    /// The admin service and the token guarding it (None: no token, not served).
    pub admin: Option<(Admin, AdminToken)>,
}

/// How the host reaches the agent wrapper: where, through which network settings,
/// with which credential.
struct WrapperLink {
    origin: Origin,
    net: NetSettings,
    credential: Option<HostCredential>,
}

impl<E: Executor> Host<E> {
    /// Builds the host from `args`: the lifecycle tells `health` what serves; tasks run
    /// on the executor `executor` makes from the adapter runtime.
    pub async fn build(
        args: &ServeArgs,
        health: &HealthReporter,
        executor: impl FnOnce(&Arc<AdapterRuntime>) -> Arc<E>,
    ) -> anyhow::Result<Host<E>> {
        let engine = build_engine(&EngineLimits {
            max_instances: args.max_concurrent_tasks + 8,
            max_memory_bytes: args.max_memory_mib << 20,
        })?;
        let wrapper = WrapperLink::of(args)?;
        let outbound = outbound_client(args, &wrapper)?;
        let admin_token = args.admin_token()?;
        let secrets = secret_sources(args, admin_token.as_ref(), wrapper.credential.as_ref());
        let policy_defaults = policy_defaults(args, wrapper.origin.clone(), secrets);
        let runtime = Arc::new(AdapterRuntime::new(
            engine,
            Arc::new(outbound),
            compile_cache(args)?,
            args.adapter_self_test,
        )?);
        let registry = Arc::new(AdapterRegistry::default());
        let lifecycle = Arc::new(AdapterLifecycle::new(
            runtime.clone(),
            registry.clone(),
            args.adapters_dir.clone(),
            policy_defaults,
            Arc::new(BackendHealth(health.clone())),
            (args.max_upload_mib as u64) << 20,
        ));
        lifecycle
            .reconcile(false)
            .await
            .context("loading adapters")?;
        let sources = registry_sources(args, &lifecycle).await?;
        let federation = Federation::new(
            executor(&runtime),
            registry.clone(),
            service_config(args, wrapper),
        )?;
        let admin = admin_token.map(|token| {
            let admin = Admin::new(
                lifecycle.clone(),
                sources.clone(),
                args.max_upload_mib << 20,
            );
            (admin, token)
        });
        Ok(Host {
            registry,
            lifecycle,
            sources,
            federation,
            admin,
        })
    }
}

impl WrapperLink {
    fn of(args: &ServeArgs) -> anyhow::Result<WrapperLink> {
        let origin = Origin::of(&args.wrapper_url)
            .with_context(|| format!("wrapper URL {} is not http(s)", args.wrapper_url))?;
        let net = NetSettings {
            ca_file: args.outbound_ca_file.clone(),
            proxy: args.outbound_proxy.clone(),
        };
        let credential = args
            .wrapper_credential_file
            .as_deref()
            .map(|file| HostCredential::from_file(file, origin.clone()))
            .transpose()?;
        if credential.is_none() {
            tracing::info!(
                "no --wrapper-credential-file: requests to the wrapper carry no host credential"
            );
        }
        Ok(WrapperLink {
            origin,
            net,
            credential,
        })
    }
}

/// The client every adapter's outbound HTTP goes through, bound to the wrapper.
fn outbound_client(args: &ServeArgs, wrapper: &WrapperLink) -> anyhow::Result<OutboundHttp> {
    Ok(OutboundHttp::configured(
        OutboundLimits {
            max_response_bytes: args.max_response_bytes,
            default_timeout: Duration::from_millis(args.outbound_timeout_ms),
            connect_timeout: Duration::from_millis(args.connect_timeout_ms),
        },
        &wrapper.net,
        wrapper.credential.clone(),
    )
    .context("building the outbound HTTP client")?
    .for_wrapper(wrapper.origin.clone()))
}

/// Where policy manifests may take secrets from; never the host's own secrets.
fn secret_sources(
    args: &ServeArgs,
    admin_token: Option<&AdminToken>,
    credential: Option<&HostCredential>,
) -> SecretSources {
    let mut secrets = SecretSources {
        dir: args.secrets_dir.clone(),
        env_prefix: args.secret_env_prefix.clone(),
        forbidden: Vec::new(),
    };
    if let Some(token) = admin_token {
        secrets.forbid(token.secret());
        secrets.forbid(token.bearer());
    }
    if let Some(credential) = credential {
        secrets.forbid(credential.secret_bytes());
    }
    secrets
}

/// The sandbox limits an adapter without a policy manifest gets.
fn policy_defaults(args: &ServeArgs, wrapper: Origin, secrets: SecretSources) -> PolicyDefaults {
    PolicyDefaults {
        wrapper,
        outbound_timeout: Duration::from_millis(args.outbound_timeout_ms),
        max_response_bytes: args.max_response_bytes,
        max_requests_per_task: args.max_requests_per_task,
        max_concurrent_requests: args.max_concurrent_requests as usize,
        max_memory_bytes: args.max_memory_mib << 20,
        cpu_budget: Duration::from_millis(args.cpu_budget_ms),
        max_concurrent_tasks: match args.max_tasks_per_adapter {
            0 => args.max_concurrent_tasks as usize,
            n => n as usize,
        },
        secrets,
    }
}

fn compile_cache(args: &ServeArgs) -> anyhow::Result<Option<CompileCache>> {
    args.compile_cache_dir
        .as_deref()
        .map(|dir| {
            CompileCache::open(dir)
                .with_context(|| format!("opening the compile cache {}", dir.display()))
        })
        .transpose()
}

/// The registry sources of `--adapter-source`, polled once (None: none configured).
async fn registry_sources(
    args: &ServeArgs,
    lifecycle: &Arc<AdapterLifecycle>,
) -> anyhow::Result<Option<Arc<RegistrySources>>> {
    if args.adapter_sources.is_empty() {
        return Ok(None);
    }
    // Registries trust what outbound HTTPS trusts unless given their own CA file.
    let mut registry_args = args.registry.clone();
    if registry_args.registry_ca_file.is_none() {
        registry_args.registry_ca_file = args.outbound_ca_file.clone();
    }
    let registry = Registry::new(
        &registry_args,
        Duration::from_millis(args.connect_timeout_ms),
    )
    .context("setting up the registry client")?;
    let sources = Arc::new(RegistrySources::new(
        lifecycle.clone(),
        registry,
        args.adapter_sources.clone(),
        args.max_upload_mib << 20,
    ));
    // One poll before serving: a reachable registry's adapters serve from the first
    // request; an unreachable one is retried on the interval.
    sources.poll_all().await;
    Ok(Some(sources))
}

fn service_config(args: &ServeArgs, wrapper: WrapperLink) -> ServiceConfig {
    ServiceConfig {
        wrapper_url: args.wrapper_url.as_str().trim_end_matches('/').to_string(),
        default_task_timeout: args.task_timeout(),
        max_concurrent_tasks: args.max_concurrent_tasks as usize,
        max_output_bytes: args.max_output_bytes,
        background_results_bytes: args.background_results_mib << 20,
        net: wrapper.net,
        wrapper_credential: wrapper.credential,
    }
}
