//! `agents`: the agents the host's wrapper can run (ListAgents).

use super::output::{print_error, struct_json};
use super::{connect, exit};
use crate::cli::AgentsArgs;
use federation_proto::{AgentInfo, ListAgentsRequest};

/// Lists the agents the host's wrapper can run; returns the exit code.
pub async fn agents(args: AgentsArgs) -> anyhow::Result<i32> {
    let mut client = match connect(&args.host).await {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let request = ListAgentsRequest {
        backend: args.backend,
    };
    let agents = match client.list_agents(request).await {
        Ok(reply) => reply.into_inner().agents,
        Err(status) => return Ok(print_error(&status, args.json)),
    };
    if args.json {
        let agents: Vec<_> = agents.iter().map(agent_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "agents": agents }))?
        );
        return Ok(exit::OK);
    }
    for agent in &agents {
        let mut traits = vec![agent.framework.clone()];
        if agent.default {
            traits.push("default".into());
        }
        if agent.can_request_input {
            traits.push("asks for input".into());
        }
        println!("{} ({})", agent.name, traits.join(", "));
        if !agent.description.is_empty() {
            println!("  {}", agent.description);
        }
        let backends = match agent.backends.as_slice() {
            [] => "none loaded".to_string(),
            names => names.join(", "),
        };
        println!("  backends: {backends}");
        if !agent.tools.is_empty() {
            println!("  tools:    {}", agent.tools.join(", "));
        }
        if let Some(schema) = &agent.input_schema {
            println!("  input:    {}", struct_json(Some(schema)));
        }
    }
    if agents.is_empty() {
        println!("no agents");
    }
    Ok(exit::OK)
}

fn agent_json(agent: &AgentInfo) -> serde_json::Value {
    serde_json::json!({
        "name": agent.name,
        "framework": agent.framework,
        "description": agent.description,
        "default": agent.default,
        "can_request_input": agent.can_request_input,
        "tools": agent.tools,
        "backends": agent.backends,
        "input_schema": struct_json(agent.input_schema.as_ref()),
    })
}
