//! Where the wrapper serves what, and the media types it speaks.

/// Runs a CrewAI crew (`POST`, a [`RunRequest`](crate::RunRequest) body).
pub const RUN_CREW: &str = "/v1/run_crew";
/// Runs a LangGraph graph (`POST`, a [`RunRequest`](crate::RunRequest) body).
pub const RUN_GRAPH: &str = "/v1/run_graph";
/// The registered agents (`GET`, an [`AgentList`](crate::AgentList)).
pub const AGENTS: &str = "/v1/agents";

/// The body of a run request and of a blocking reply.
pub const JSON: &str = "application/json";
/// A run's progress stream (`Accept` it on a run route): one [`Event`](crate::Event)
/// per line.
pub const NDJSON: &str = "application/x-ndjson";

/// A run's record (`GET`, a [`RunRecord`](crate::RunRecord)).
pub fn run(session: &str, request_id: &str) -> String {
    format!("/v1/sessions/{session}/runs/{request_id}")
}

/// Asks a run to stop at its next step (`POST`; answers its [`RunRecord`](crate::RunRecord)).
pub fn cancel(session: &str, request_id: &str) -> String {
    format!("/v1/sessions/{session}/runs/{request_id}/cancel")
}

/// A run's events with seq > `after` (`GET`): NDJSON, one [`Event`](crate::Event) per
/// line, replayed from the run record then followed live until the terminal event.
pub fn events(session: &str, request_id: &str, after: u64) -> String {
    format!("/v1/sessions/{session}/runs/{request_id}/events?after={after}")
}

/// `route` under the wrapper's base URL (a trailing `/` of the base is dropped).
pub fn url(wrapper_url: &str, route: &str) -> String {
    format!("{}{route}", wrapper_url.trim_end_matches('/'))
}

/// The (session, request id) of a run-record path, [`run`]'s inverse.
pub fn parse_run(path: &str) -> Option<(&str, &str)> {
    let (session, request_id) = path.strip_prefix("/v1/sessions/")?.split_once("/runs/")?;
    (!session.contains('/') && !request_id.contains('/')).then_some((session, request_id))
}

/// The (session, request id) of a cancel path, [`cancel`]'s inverse.
pub fn parse_cancel(path: &str) -> Option<(&str, &str)> {
    parse_run(path.strip_suffix("/cancel")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_paths_parse_back() {
        assert_eq!(parse_run(&run("s-1", "r-1")), Some(("s-1", "r-1")));
        assert_eq!(parse_cancel(&cancel("s-1", "r-1")), Some(("s-1", "r-1")));
        assert_eq!(parse_run(&cancel("s-1", "r-1")), None);
        assert_eq!(parse_run("/v1/run_crew"), None);
        assert_eq!(url("http://w:1/", RUN_CREW), "http://w:1/v1/run_crew");
    }
}
