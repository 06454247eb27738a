//! Agent cards: one per federated agent the host can run (`ListAgents`, agents with a
//! loaded backend), each at `/agents/{name}/.well-known/agent-card.json` and all of
//! them at `/agents`. The skill comes from the agent's description, tools and input
//! schema; the security schemes say what the host checks.

use federation_proto::AgentInfo;
use federation_proto::json::struct_to_json;
use serde_json::{Map, Value, json};

use crate::types::{
    AgentCapabilities, AgentCard, AgentInterface, AgentProvider, AgentSkill, PROTOCOL_VERSION,
    SecurityRequirement,
};

/// How callers prove who they are (what the card's `securitySchemes` declare).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Security {
    /// `Authorization: Bearer <token>` (the auth file's tokens).
    pub bearer: bool,
    /// A client certificate signed by the host's client CA.
    pub mtls: bool,
}

/// The URL path of an agent's JSON-RPC endpoint (its card sits below it).
pub fn agent_path(name: &str) -> String {
    format!("/agents/{name}")
}

/// The card of `agent`, served from `base_url` (scheme and authority).
pub fn card(agent: &AgentInfo, base_url: &str, security: Security) -> AgentCard {
    let description = if agent.description.is_empty() {
        format!("The {} agent {:?}", agent.framework, agent.name)
    } else {
        agent.description.clone()
    };
    let (security_schemes, security_requirements) = security_schemes(security);
    AgentCard {
        name: agent.name.clone(),
        description: description.clone(),
        supported_interfaces: vec![AgentInterface {
            url: format!("{base_url}{}", agent_path(&agent.name)),
            protocol_binding: "JSONRPC".into(),
            tenant: String::new(),
            protocol_version: PROTOCOL_VERSION.into(),
        }],
        provider: Some(AgentProvider {
            url: base_url.to_string(),
            organization: "agent-federation".into(),
        }),
        version: env!("CARGO_PKG_VERSION").into(),
        capabilities: AgentCapabilities {
            streaming: true,
            push_notifications: false,
            extended_agent_card: false,
        },
        security_schemes,
        security_requirements,
        default_input_modes: vec!["text/plain".into(), "application/json".into()],
        default_output_modes: vec!["text/plain".into(), "application/json".into()],
        skills: vec![skill(agent, description)],
    }
}

/// The agent's one skill: running it, with its input schema and tools described.
fn skill(agent: &AgentInfo, description: String) -> AgentSkill {
    let schema = agent
        .input_schema
        .as_ref()
        .and_then(|s| struct_to_json(s).ok())
        .filter(|s| !s.is_empty());
    let mut text =
        format!("{description}. Send the goal as a text part (more text parts are context)");
    if let Some(schema) = &schema {
        text.push_str(&format!(
            "; structured input as one data part matching this JSON Schema: {}",
            Value::Object(schema.clone())
        ));
    }
    if !agent.tools.is_empty() {
        text.push_str(&format!(". Tools: {}", agent.tools.join(", ")));
    }
    if agent.can_request_input {
        text.push_str(
            ". It may stop to ask for input (TASK_STATE_INPUT_REQUIRED, the question as a data \
             part): answer with a message to the same task",
        );
    }
    let mut tags = vec![agent.framework.clone()];
    tags.extend(agent.tools.iter().map(|t| format!("tool:{t}")));
    if agent.can_request_input {
        tags.push("input-required".into());
    }
    AgentSkill {
        id: agent.name.clone(),
        name: agent.name.clone(),
        description: text,
        tags,
        examples: Vec::new(),
        input_modes: vec!["text/plain".into(), "application/json".into()],
        output_modes: vec!["text/plain".into(), "application/json".into()],
    }
}

fn security_schemes(security: Security) -> (Map<String, Value>, Vec<SecurityRequirement>) {
    let mut schemes = Map::new();
    let mut requirements = Vec::new();
    if security.bearer {
        schemes.insert(
            "bearer".into(),
            json!({"httpAuthSecurityScheme": {
                "scheme": "Bearer",
                "description": "a token of the host's auth file (a principal)",
            }}),
        );
        requirements.push(SecurityRequirement {
            schemes: Map::from_iter([("bearer".into(), json!({"list": []}))]),
        });
    }
    if security.mtls {
        schemes.insert(
            "mtls".into(),
            json!({"mtlsSecurityScheme": {
                "description": "a client certificate signed by the host's client CA",
            }}),
        );
        requirements.push(SecurityRequirement {
            schemes: Map::from_iter([("mtls".into(), json!({"list": []}))]),
        });
    }
    (schemes, requirements)
}
