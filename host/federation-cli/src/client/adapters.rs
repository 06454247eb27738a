//! `adapters`: the AdminService actions (list, reload, rollback, load) with the admin
//! token; `adapters push` goes to a registry instead ([`super::push`]).

use anyhow::Context;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::admin_output::{print_adapter, print_listing, print_reload};
use super::output::print_error;
use super::{exit, push::push};
use crate::cli::{AdaptersAction, AdaptersArgs, HostAddress};
use crate::connect::Bearer;
use federation_host::AdminToken;
use federation_proto::admin_service_client::AdminServiceClient;
use federation_proto::{
    ListAdaptersRequest, LoadAdapterRequest, ReloadAdaptersRequest, RollbackAdapterRequest,
};

/// Runs one AdminService action; prints the outcome and returns the exit code.
pub async fn adapters(args: AdaptersArgs) -> anyhow::Result<i32> {
    if let AdaptersAction::Push {
        file,
        reference,
        policy,
        registry,
    } = args.action
    {
        return push(file, &reference, policy, &registry, args.json).await;
    }
    let Some(token) = args.admin_token else {
        eprintln!("error: the admin token is needed (--admin-token or FEDERATION_ADMIN_TOKEN)");
        return Ok(exit::USAGE);
    };
    let mut client = admin_client(&args.host, &token).await?;
    let json = args.json;
    let outcome = match args.action {
        AdaptersAction::List => client
            .list_adapters(ListAdaptersRequest {})
            .await
            .map(|r| print_listing(&r.into_inner(), json)),
        AdaptersAction::Reload => client
            .reload_adapters(ReloadAdaptersRequest {})
            .await
            .map(|r| print_reload(&r.into_inner(), json)),
        AdaptersAction::Rollback { name } => client
            .rollback_adapter(RollbackAdapterRequest { name })
            .await
            .map(|r| print_adapter(&r.into_inner(), json)),
        AdaptersAction::Load { file, policy } => {
            let component =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let policy = match policy {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => String::new(),
            };
            client
                .load_adapter(LoadAdapterRequest { component, policy })
                .await
                .map(|r| print_adapter(&r.into_inner(), json))
        }
        AdaptersAction::Push { .. } => unreachable!("handled above"),
    };
    match outcome {
        Ok(()) => Ok(exit::OK),
        Err(status) => Ok(print_error(&status, json)),
    }
}

/// An AdminService client on `host` authorized by the admin token (not by the
/// caller's `--token`), with no limit on what it sends (uploads).
async fn admin_client(
    host: &HostAddress,
    token: &AdminToken,
) -> anyhow::Result<AdminServiceClient<InterceptedService<Channel, Bearer>>> {
    let channel = host
        .endpoint()?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", host.addr))?;
    let bearer: MetadataValue<_> = token.bearer().parse().context("admin token")?;
    Ok(
        AdminServiceClient::with_interceptor(channel, Bearer::new(bearer))
            .max_encoding_message_size(usize::MAX),
    )
}
