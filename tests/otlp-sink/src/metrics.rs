//! The OTLP/gRPC metrics receiver (`MetricsService/Export`; OTLP/HTTP `/v1/metrics` is in
//! [`crate::http`]): keeps every data point,
//! flattened to name + attributes + value, so tests can assert what a service counted.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    metrics_service_server::{MetricsService, MetricsServiceServer},
};
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
use serde_json::Value as Json;
use tokio::sync::watch;
use tonic::{Request, Response, Status, codec::CompressionEncoding};

use crate::{MAX_EXPORT_BYTES, span::attributes};

/// One exported data point. Sums and gauges carry `value`; histograms carry their
/// `count` and `sum` (and `max` when sent).
#[derive(Clone, Debug, serde::Serialize)]
pub struct MetricPoint {
    pub name: String,
    pub service_name: String,
    pub attributes: BTreeMap<String, Json>,
    pub value: Option<f64>,
    pub count: Option<u64>,
    pub sum: Option<f64>,
    pub max: Option<f64>,
    /// `grpc` or `http`: the receiver it came through.
    pub received_via: String,
}

impl MetricPoint {
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Json::as_str)
    }
}

#[derive(Clone)]
pub struct MetricStore {
    points: Arc<watch::Sender<Vec<MetricPoint>>>,
}

impl Default for MetricStore {
    fn default() -> Self {
        MetricStore {
            points: Arc::new(watch::Sender::new(Vec::new())),
        }
    }
}

impl MetricStore {
    pub fn all(&self) -> Vec<MetricPoint> {
        self.points.borrow().clone()
    }

    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&[MetricPoint]) -> bool,
    ) -> anyhow::Result<Vec<MetricPoint>> {
        let mut rx = self.points.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|points| pred(points))).await {
            Ok(Ok(points)) => Ok(points.clone()),
            _ => {
                let names: std::collections::BTreeSet<String> =
                    self.all().into_iter().map(|p| p.name).collect();
                anyhow::bail!("timed out after {timeout:?}; metrics received: {names:?}")
            }
        }
    }

    pub(crate) fn extend(&self, request: ExportMetricsServiceRequest, via: &str) {
        let mut out = Vec::new();
        for resource in request.resource_metrics {
            let service_name = resource
                .resource
                .as_ref()
                .map(|r| attributes(&r.attributes))
                .and_then(|attrs| {
                    attrs
                        .get("service.name")
                        .and_then(Json::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default();
            for scope in resource.scope_metrics {
                for metric in scope.metrics {
                    let point = |attrs, value, count, sum, max| MetricPoint {
                        name: metric.name.clone(),
                        service_name: service_name.clone(),
                        attributes: attrs,
                        value,
                        count,
                        sum,
                        max,
                        received_via: via.to_string(),
                    };
                    // Sums and gauges carry plain numbers; histograms count and sum.
                    let numbers = match &metric.data {
                        Some(Data::Sum(sum)) => sum.data_points.as_slice(),
                        Some(Data::Gauge(gauge)) => gauge.data_points.as_slice(),
                        _ => &[],
                    };
                    for p in numbers {
                        out.push(point(
                            attributes(&p.attributes),
                            number(p.value),
                            None,
                            None,
                            None,
                        ));
                    }
                    if let Some(Data::Histogram(histogram)) = &metric.data {
                        for p in &histogram.data_points {
                            out.push(point(
                                attributes(&p.attributes),
                                None,
                                Some(p.count),
                                p.sum,
                                p.max,
                            ));
                        }
                    }
                }
            }
        }
        if !out.is_empty() {
            self.points.send_modify(|all| all.extend(out));
        }
    }
}

fn number(value: Option<Value>) -> Option<f64> {
    match value? {
        Value::AsDouble(v) => Some(v),
        Value::AsInt(v) => Some(v as f64),
    }
}

struct Receiver {
    store: MetricStore,
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.store.extend(request.into_inner(), "grpc");
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

pub fn service(store: MetricStore) -> MetricsServiceServer<impl MetricsService> {
    MetricsServiceServer::new(Receiver { store })
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_EXPORT_BYTES)
}
