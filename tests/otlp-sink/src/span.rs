//! `RecordedSpan`: an OTLP span flattened with its resource's service name, ids in hex
//! and attributes as JSON, convenient to assert on.

use std::{collections::BTreeMap, time::Duration};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// One received span, with what a test usually asserts on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecordedSpan {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// None for a root span.
    pub parent_span_id: Option<String>,
    pub name: String,
    /// `server`, `client`, `internal`, `producer`, `consumer` or `unspecified`.
    pub kind: String,
    /// The resource's `service.name` ("" when absent).
    pub service_name: String,
    pub scope_name: String,
    pub attributes: BTreeMap<String, Json>,
    /// `unset`, `ok` or `error`.
    pub status_code: String,
    pub status_message: String,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// `grpc` or `http`.
    pub received_via: String,
}

impl RecordedSpan {
    /// An attribute of any type.
    pub fn attr(&self, key: &str) -> Option<&Json> {
        self.attributes.get(key)
    }

    /// A string attribute (None when absent or not a string).
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(Json::as_str)
    }

    /// An integer attribute (None when absent or not an integer).
    pub fn attr_i64(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(Json::as_i64)
    }

    /// End minus start (zero if the clock went backwards).
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_unix_nano.saturating_sub(self.start_unix_nano))
    }

    pub fn duration_ms(&self) -> f64 {
        self.duration().as_secs_f64() * 1e3
    }

    /// Whether `child` names this span as its direct parent, in the same trace.
    pub fn is_parent_of(&self, child: &RecordedSpan) -> bool {
        self.trace_id == child.trace_id
            && child.parent_span_id.as_deref() == Some(self.span_id.as_str())
    }

    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_none()
    }
}

/// Flattens an export request into recorded spans.
pub fn flatten(request: ExportTraceServiceRequest, via: &str) -> Vec<RecordedSpan> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let service_name = resource_spans
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .and_then(|kv| kv.value.as_ref())
            .map(any_to_json)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            let scope_name = scope_spans.scope.map(|s| s.name).unwrap_or_default();
            for span in scope_spans.spans {
                let status = span.status.unwrap_or_default();
                out.push(RecordedSpan {
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex::encode(&span.parent_span_id)),
                    name: span.name,
                    kind: kind_name(span.kind).into(),
                    service_name: service_name.clone(),
                    scope_name: scope_name.clone(),
                    attributes: attributes(&span.attributes),
                    status_code: match StatusCode::try_from(status.code) {
                        Ok(StatusCode::Ok) => "ok",
                        Ok(StatusCode::Error) => "error",
                        _ => "unset",
                    }
                    .into(),
                    status_message: status.message,
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano,
                    received_via: via.into(),
                });
            }
        }
    }
    out
}

fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Internal) => "internal",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        _ => "unspecified",
    }
}

pub(crate) fn attributes(pairs: &[KeyValue]) -> BTreeMap<String, Json> {
    pairs
        .iter()
        .map(|kv| {
            let value = kv.value.as_ref().map_or(Json::Null, any_to_json);
            (kv.key.clone(), value)
        })
        .collect()
}

fn any_to_json(value: &AnyValue) -> Json {
    match &value.value {
        None => Json::Null,
        Some(Value::StringValue(s)) => Json::String(s.clone()),
        Some(Value::BoolValue(b)) => Json::Bool(*b),
        Some(Value::IntValue(i)) => Json::from(*i),
        Some(Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number)
        }
        Some(Value::ArrayValue(list)) => Json::Array(list.values.iter().map(any_to_json).collect()),
        Some(Value::KvlistValue(list)) => Json::Object(
            list.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map_or(Json::Null, any_to_json),
                    )
                })
                .collect(),
        ),
        Some(Value::BytesValue(bytes)) => Json::String(hex::encode(bytes)),
        // An index into a profiles dictionary; meaningless for traces (per the proto).
        Some(Value::StringValueStrindex(_)) => Json::Null,
    }
}
