//! Trace-shape helpers for test code: "A is the parent of B is the parent of C",
//! children and descendants of a span.

use crate::span::RecordedSpan;

/// A predicate that selects one link of a chain.
pub type SpanMatch<'m> = &'m dyn Fn(&RecordedSpan) -> bool;

/// Matches spans by name.
pub fn named(name: &str) -> impl Fn(&RecordedSpan) -> bool + '_ {
    move |span| span.name == name
}

/// Finds spans `[s0, s1, ...]` where `s_i` matches `links[i]` and each is the direct
/// parent of the next, all in one trace. Every candidate is tried, so a matching span
/// on a dead-end branch does not hide a complete chain elsewhere. `None` when no chain
/// (or no link) is given.
///
/// ```no_run
/// # use otlp_sink::{RecordedSpan, find_chain, named};
/// # fn check(spans: &[RecordedSpan]) {
/// let chain = find_chain(spans, &[&named("run_task"), &|s| s.kind == "client"])
///     .expect("a client span under run_task");
/// assert_eq!(chain[1].service_name, "host");
/// # }
/// ```
pub fn find_chain<'a>(
    spans: &'a [RecordedSpan],
    links: &[SpanMatch<'_>],
) -> Option<Vec<&'a RecordedSpan>> {
    let (first, rest) = links.split_first()?;
    spans
        .iter()
        .filter(|s| first(s))
        .find_map(|s| extend(spans, vec![s], rest))
}

/// [`find_chain`] by span names: `find_named_chain(&spans, &["a", "b", "c"])`.
pub fn find_named_chain<'a>(
    spans: &'a [RecordedSpan],
    names: &[&str],
) -> Option<Vec<&'a RecordedSpan>> {
    let matchers: Vec<_> = names.iter().map(|name| named(name)).collect();
    let links: Vec<SpanMatch<'_>> = matchers.iter().map(|m| m as SpanMatch<'_>).collect();
    find_chain(spans, &links)
}

fn extend<'a>(
    spans: &'a [RecordedSpan],
    chain: Vec<&'a RecordedSpan>,
    links: &[SpanMatch<'_>],
) -> Option<Vec<&'a RecordedSpan>> {
    let Some((next, rest)) = links.split_first() else {
        return Some(chain);
    };
    let last = *chain.last().expect("a chain starts with one span");
    children_of(spans, last)
        .into_iter()
        .filter(|s| next(s))
        .find_map(|s| {
            let mut longer = chain.clone();
            longer.push(s);
            extend(spans, longer, rest)
        })
}

/// The direct children of `parent`, earliest first.
pub fn children_of<'a>(spans: &'a [RecordedSpan], parent: &RecordedSpan) -> Vec<&'a RecordedSpan> {
    let mut children: Vec<_> = spans.iter().filter(|s| parent.is_parent_of(s)).collect();
    children.sort_by_key(|s| s.start_unix_nano);
    children
}

/// Every span below `root` (children, their children, ...), in no particular order.
pub fn descendants_of<'a>(spans: &'a [RecordedSpan], root: &RecordedSpan) -> Vec<&'a RecordedSpan> {
    let mut found: Vec<&RecordedSpan> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for child in children_of(spans, parent) {
            // A malformed trace could loop; visit each span once.
            if !found.iter().any(|f| std::ptr::eq(*f, child)) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}
