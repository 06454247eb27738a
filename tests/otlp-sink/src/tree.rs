//! Rendering a trace as an indented tree: `name [service] kind (ms)`, children under
//! parents, spans whose parent never arrived listed at the root with a marker, so a
//! broken propagation shows up as a second root.

use std::{
    collections::{BTreeMap, HashSet},
    fmt::Write,
};

use crate::span::RecordedSpan;

/// Follows a span whose parent is not among the spans rendered.
pub const ORPHAN_MARKER: &str = "[orphan]";

/// Renders spans (normally one trace) as an indented tree, two spaces a level,
/// siblings and roots in start order; failed spans are marked `ERROR "message"`.
pub fn render(spans: &[RecordedSpan]) -> String {
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: BTreeMap<&str, Vec<&RecordedSpan>> = BTreeMap::new();
    let mut roots = Vec::new();
    for span in spans {
        match span.parent_span_id.as_deref() {
            Some(parent) if ids.contains(parent) => children.entry(parent).or_default().push(span),
            _ => roots.push(span),
        }
    }
    for list in children.values_mut() {
        list.sort_by_key(|s| s.start_unix_nano);
    }
    roots.sort_by_key(|s| s.start_unix_nano);
    let mut out = String::new();
    for root in roots {
        write_span(&mut out, root, &children, 0, root.parent_span_id.is_some());
    }
    out
}

fn write_span(
    out: &mut String,
    span: &RecordedSpan,
    children: &BTreeMap<&str, Vec<&RecordedSpan>>,
    depth: usize,
    orphan: bool,
) {
    let _ = write!(
        out,
        "{}{} [{}] {} ({:.1} ms)",
        "  ".repeat(depth),
        span.name,
        span.service_name,
        span.kind,
        span.duration_ms(),
    );
    if span.status_code == "error" {
        let _ = write!(out, " ERROR {:?}", span.status_message);
    }
    if orphan {
        let parent = span.parent_span_id.as_deref().unwrap_or_default();
        let _ = write!(out, " {ORPHAN_MARKER} parent {parent} not received");
    }
    out.push('\n');
    for child in children.get(span.span_id.as_str()).into_iter().flatten() {
        write_span(out, child, children, depth + 1, false);
    }
}
