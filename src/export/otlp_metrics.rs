//! OTLP metrics export (`MetricsService/Export` over gRPC, `POST /v1/metrics` over
//! HTTP/protobuf) of the RED metrics, to the collectors `--otlp` names.
//!
//! Each push is a whole cumulative snapshot ([`crate::metrics::otlp::build_request`]); a batch
//! of several queued snapshots sends only the latest, which holds everything the others did.
//! The endpoint is the traces URL's: for HTTP, a path ending in `/v1/traces` becomes
//! `/v1/metrics` (no path: `/v1/metrics`); gRPC uses the same host. Protocol, headers and
//! compression follow the traces exporter's flags.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};

use super::delivery::{Delivery, Outcome, Transport};
use super::http1::{HttpUrl, Poster};
use super::otlp::{grpc_metadata, grpc_outcome, gzip, OtlpConfig, Protocol};
use super::SinkReport;

/// The metrics URL of an OTLP/HTTP traces URL.
pub fn metrics_url(traces_url: &str) -> String {
    match traces_url.trim_end_matches('/').strip_suffix("/v1/traces") {
        Some(base) => format!("{base}/v1/metrics"),
        None => traces_url.to_string(),
    }
}

struct Grpc {
    client: MetricsServiceClient<Channel>,
    metadata: MetadataMap,
}

impl Transport for Grpc {
    type Item = ExportMetricsServiceRequest;
    type Request = ExportMetricsServiceRequest;

    fn encode(&mut self, items: Vec<Self::Item>) -> Self::Request {
        items.into_iter().last().unwrap_or_default()
    }

    async fn send(&mut self, request: &Self::Request) -> Outcome {
        let mut req = tonic::Request::new(request.clone());
        *req.metadata_mut() = self.metadata.clone();
        match self.client.export(req).await {
            Ok(_) => Outcome::Delivered { rejected: 0 },
            Err(status) => grpc_outcome(&status),
        }
    }
}

struct Http {
    poster: Poster,
    gzip: bool,
}

impl Transport for Http {
    type Item = ExportMetricsServiceRequest;
    type Request = Bytes;

    fn encode(&mut self, items: Vec<Self::Item>) -> Bytes {
        let body = items.into_iter().last().unwrap_or_default().encode_to_vec();
        Bytes::from(if self.gzip { gzip(&body) } else { body })
    }

    async fn send(&mut self, request: &Bytes) -> Outcome {
        match self.poster.post(request).await {
            Ok(_) => Outcome::Delivered { rejected: 0 },
            Err(outcome) => outcome,
        }
    }
}

/// An OTLP metrics exporter: snapshots pushed on the caller's thread, delivered on its own.
pub struct OtlpMetricsSink {
    delivery: Delivery<ExportMetricsServiceRequest>,
}

impl OtlpMetricsSink {
    /// Check the configuration (the traces exporter's) and start the exporter.
    pub fn start(config: OtlpConfig) -> Result<Self, String> {
        let protocol = config
            .protocol
            .unwrap_or_else(|| Protocol::for_url(&config.endpoint));
        let timeout = config.delivery.request_timeout;
        let gzip = config.gzip;
        let delivery = match protocol {
            Protocol::Grpc => {
                let url = HttpUrl::parse(&config.endpoint, "/")?;
                let metadata = grpc_metadata(&config.headers)?;
                let endpoint = Endpoint::from_shared(format!("http://{}", url.host))
                    .map_err(|e| format!("invalid URL {:?}: {e}", config.endpoint))?
                    .connect_timeout(timeout)
                    .tcp_nodelay(true);
                let name = format!("otlp metrics grpc {}", config.endpoint);
                Delivery::start(name, config.delivery, move || {
                    let mut client = MetricsServiceClient::new(endpoint.connect_lazy());
                    if gzip {
                        client = client
                            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
                            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
                    }
                    Ok(Grpc { client, metadata })
                })
            }
            Protocol::HttpProtobuf => {
                let endpoint = metrics_url(&config.endpoint);
                let url = HttpUrl::parse(&endpoint, "/v1/metrics")?;
                let poster = Poster::new(url, "application/x-protobuf", gzip, &config.headers)?;
                let name = format!("otlp metrics http {endpoint}");
                Delivery::start(name, config.delivery, move || Ok(Http { poster, gzip }))
            }
        };
        Ok(OtlpMetricsSink { delivery })
    }

    /// Queue a snapshot.
    pub fn push(&mut self, request: ExportMetricsServiceRequest) {
        let bytes = request.encoded_len();
        self.delivery.push(request, bytes);
    }

    /// Deliver what is queued within the deadline; what was delivered and lost.
    pub fn close(self) -> SinkReport {
        self.delivery.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_path_follows_the_traces_path() {
        assert_eq!(
            metrics_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/metrics"
        );
        assert_eq!(
            metrics_url("http://c:4318/x/v1/traces/"),
            "http://c:4318/x/v1/metrics"
        );
        assert_eq!(metrics_url("http://c:4318"), "http://c:4318");
    }
}
