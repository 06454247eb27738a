//! `agent-federation adapter check`: the shipped adapters pass, and an adapter that
//! does not map replies, a file that is not a component and a bad policy manifest each
//! fail with a readable report and exit code 1.

mod support;

use support::{adapter_check as check, assert_interaction_checks_pass, dist_dir};

#[test]
fn shipped_adapters_pass_and_broken_ones_fail_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not a component").unwrap();
    let with_bad_policy = dir.path().join("crewai.wasm");
    std::fs::copy(dist_dir().join("adapters/crewai.wasm"), &with_bad_policy).unwrap();
    std::fs::write(
        dir.path().join("crewai.toml"),
        "[limits]\ncpu_budget_ms = 0\n",
    )
    .unwrap();

    // Compiling in a debug build takes seconds: check them side by side.
    let runs: Vec<_> = [
        dist_dir().join("adapters/crewai.wasm"),
        dist_dir().join("adapters/langgraph.wasm"),
        dist_dir().join("test-adapters/test-faults.wasm"),
        garbage,
        with_bad_policy,
    ]
    .into_iter()
    .map(|file| std::thread::spawn(move || check(&file, &[])))
    .collect();
    let [crewai, langgraph, faults, garbage, bad_policy]: [(i32, String); 5] = runs
        .into_iter()
        .map(|r| r.join().unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();

    for (name, (code, report)) in [("crewai", &crewai), ("langgraph", &langgraph)] {
        assert_eq!(*code, 0, "{name}:\n{report}");
        assert!(report.contains(", 0 failed"), "{name}:\n{report}");
        assert!(
            report.contains("PASS carries the host's traceparent"),
            "{report}"
        );
        assert!(report.contains("exports: describe, run-task"), "{report}");
        // Built against 0.1.2 through the SDK: agent, resume and interrupts.
        assert_interaction_checks_pass(report);
        assert!(
            report.lines().any(|line| line.starts_with("PASS relays progress when watched")
                && line.ends_with("5 progress events: step research started; LLM call by researcher (stub); tool search called by researcher; step research finished; checkpoint saved after step research")),
            "{report}"
        );
    }

    // test-faults answers every golden task with invalid-input. It is built against
    // contract 0.1.0, so there is no progress or interaction check.
    let (code, report) = faults;
    assert_eq!(code, 1, "{report}");
    assert!(!report.contains("relays progress"), "{report}");
    assert!(!report.contains("agent and resume"), "{report}");
    assert!(
        report.contains("FAIL maps a wrapper reply to a response"),
        "{report}"
    );
    assert!(
        report.contains("FAIL sends the expected request"),
        "{report}"
    );

    let (code, report) = garbage;
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("FAIL compiles as a component"), "{report}");

    let (code, report) = bad_policy;
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("FAIL policy manifest"), "{report}");
    assert!(report.contains("must be positive"), "{report}");
}
