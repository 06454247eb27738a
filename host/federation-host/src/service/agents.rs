//! `ListAgents`: the agents the wrapper registered (its `GET /v1/agents`), each with
//! the loaded backends that can run it: the adapters whose `describe().framework` is
//! the agent's framework.

use tonic::{Request, Response, Status};

use federation_proto::json::json_to_struct;
use federation_proto::{AgentInfo, ListAgentsRequest, ListAgentsResponse};
use federation_wire::Agent;

use super::{Executor, Federation};
use crate::auth::Caller;
use crate::error::TaskError;

impl<E: Executor> Federation<E> {
    pub(super) async fn list_agents(
        &self,
        request: Request<ListAgentsRequest>,
    ) -> Result<Response<ListAgentsResponse>, Status> {
        let caller = Caller::of(&request);
        // A limited caller sees its backends and agents only.
        let backends: Vec<Backend> = self
            .registry
            .snapshot()
            .into_iter()
            .filter(|(name, _)| caller.may_use_backend(name))
            .map(|(name, slot)| Backend {
                name,
                framework: slot.current.info.framework.clone(),
            })
            .collect();
        // An unknown backend is refused before the wrapper is asked.
        let backend = request.into_inner().backend;
        if !backend.is_empty() && !caller.may_use_backend(&backend) {
            return Err(TaskError::NotAllowed {
                principal: caller.principal.to_string(),
                kind: "backend",
                name: backend,
            }
            .into());
        }
        let framework = framework_of(&backends, &backend)?;
        let agents = self
            .runs
            .agents(&caller.principal)
            .await
            .map_err(TaskError::from)?;
        let mut agents = agent_infos(agents, &backends, framework.as_deref());
        agents.retain(|agent| !caller.limits_agents() || caller.may_run_agent(&agent.name));
        Ok(Response::new(ListAgentsResponse { agents }))
    }
}

/// A loaded adapter, as far as agents are concerned: its name and framework.
pub struct Backend {
    pub name: String,
    pub framework: String,
}

/// The framework a `backend` filter selects (`None`: no filter); an unknown backend is
/// NOT_FOUND, as for a task.
pub fn framework_of(backends: &[Backend], backend: &str) -> Result<Option<String>, TaskError> {
    if backend.is_empty() {
        return Ok(None);
    }
    match backends.iter().find(|b| b.name == backend) {
        Some(found) => Ok(Some(found.framework.clone())),
        None => Err(TaskError::UnknownBackend {
            name: backend.to_string(),
            loaded: backends
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The wrapper's agents (of `framework` only, when given) with their backends.
pub fn agent_infos(
    agents: Vec<Agent>,
    backends: &[Backend],
    framework: Option<&str>,
) -> Vec<AgentInfo> {
    agents
        .into_iter()
        .filter(|agent| framework.is_none_or(|f| agent.framework == f))
        .map(|agent| AgentInfo {
            backends: backends
                .iter()
                .filter(|b| b.framework == agent.framework)
                .map(|b| b.name.clone())
                .collect(),
            name: agent.name,
            framework: agent.framework,
            description: agent.description,
            input_schema: Some(json_to_struct(agent.input_schema)),
            can_request_input: agent.can_request_input,
            default: agent.default,
            tools: agent.tools,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, framework: &str) -> Agent {
        Agent {
            name: name.into(),
            framework: framework.into(),
            description: format!("{name} agent"),
            input_schema: Default::default(),
            can_request_input: false,
            default: false,
            tools: vec![],
            llm: "wrapper".into(),
            source: "built-in".into(),
        }
    }

    fn backends() -> Vec<Backend> {
        [
            ("crewai", "crewai"),
            ("langgraph", "langgraph"),
            ("graph-b", "langgraph"),
        ]
        .into_iter()
        .map(|(name, framework)| Backend {
            name: name.into(),
            framework: framework.into(),
        })
        .collect()
    }

    #[test]
    fn each_agent_lists_the_backends_of_its_framework() {
        let agents = vec![
            agent("crew", "crewai"),
            agent("graph", "langgraph"),
            agent("team", "autogen"),
        ];
        let infos = agent_infos(agents, &backends(), None);
        let backends: Vec<_> = infos.iter().map(|a| a.backends.join(",")).collect();
        assert_eq!(backends, ["crewai", "langgraph,graph-b", ""]);
        assert_eq!(infos[0].description, "crew agent");
    }

    #[test]
    fn a_backend_filter_keeps_its_frameworks_agents_and_refuses_unknown_ones() {
        let framework = framework_of(&backends(), "graph-b").unwrap();
        assert_eq!(framework.as_deref(), Some("langgraph"));
        let agents = vec![agent("crew", "crewai"), agent("graph", "langgraph")];
        let infos = agent_infos(agents, &backends(), framework.as_deref());
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].name, "graph");

        assert_eq!(framework_of(&backends(), "").unwrap(), None);
        let error = framework_of(&backends(), "autogen").unwrap_err();
        assert_eq!(error.code(), tonic::Code::NotFound);
        assert!(
            error.to_string().contains("crewai, langgraph, graph-b"),
            "{error}"
        );
    }
}
