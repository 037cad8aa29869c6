//! OTLP/gRPC over tonic, with a codec that writes pre-encoded request bytes
//! (the batch is encoded once, whatever the number of attempts) and decodes
//! the service's response for its partial success.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use http::uri::PathAndQuery;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{AsciiMetadataKey, MetadataMap};
use tonic::transport::Channel;
use tonic::{Request, Status};
use tonic_types::StatusExt;

use super::outcome::{classify_grpc, partial, Outcome};
use super::transport::{clean_message, Signal};
use crate::error::BuildError;

const TRACES: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const METRICS: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

pub(crate) struct GrpcTransport {
    channel: Channel,
    metadata: MetadataMap,
    gzip: bool,
    signal: Signal,
}

/// Headers from configuration as gRPC metadata, checked: a bad name or
/// value is a build error naming the header.
pub(crate) fn metadata(headers: &[(String, String)]) -> Result<MetadataMap, BuildError> {
    let mut map = MetadataMap::new();
    for (k, v) in headers {
        let bad = |problem: &str| BuildError::InvalidConfig {
            setting: format!("header `{k}`"),
            problem: problem.into(),
        };
        let key = AsciiMetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|_| bad("not a valid header name"))?;
        let value = v
            .parse()
            .map_err(|_| bad("value is not valid ASCII header text"))?;
        map.insert(key, value);
    }
    Ok(map)
}

impl GrpcTransport {
    /// `channel` must have been made inside the export runtime.
    pub(crate) fn new(channel: Channel, metadata: MetadataMap, gzip: bool, signal: Signal) -> Self {
        GrpcTransport {
            channel,
            metadata,
            gzip,
            signal,
        }
    }

    pub(super) async fn send(&self, body: &Bytes, timeout: Duration) -> Outcome {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        // Gzip both ways only when asked for. Offered gzip, a collector
        // (rotel) gzips even its tiny answers, and each costs a
        // decompressor set up and torn down: measured with callgrind on
        // 60 000 `scripts/bench-ingest` lines, the export thread used
        // 127.6 M instructions with the offer and 121.8 M without (about
        // 100 per event). gRPC servers compress only in an encoding the
        // client offered; one that gzips unasked gets `Unimplemented` from
        // tonic, a rejection (counted). With
        // `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` it is gzip both ways.
        if self.gzip {
            grpc = grpc
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        if let Err(e) = grpc.ready().await {
            return Outcome::Retry {
                after: None,
                error: format!("gRPC channel: {e}"),
            };
        }
        let mut request = Request::new(body.clone());
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(timeout);
        let answer = match self.signal {
            Signal::Traces => grpc
                .unary(request, PathAndQuery::from_static(TRACES), Raw::default())
                .await
                .map(|r: tonic::Response<ExportTraceServiceResponse>| {
                    r.into_inner()
                        .partial_success
                        .map(|p| (p.rejected_spans, p.error_message))
                }),
            Signal::Metrics => grpc
                .unary(request, PathAndQuery::from_static(METRICS), Raw::default())
                .await
                .map(|r: tonic::Response<ExportMetricsServiceResponse>| {
                    r.into_inner()
                        .partial_success
                        .map(|p| (p.rejected_data_points, p.error_message))
                }),
        };
        match answer {
            Ok(Some((rejected, message))) => partial(rejected, clean_message(&message)),
            Ok(None) => Outcome::OK,
            Err(status) => {
                let delay = status
                    .get_details_retry_info()
                    .and_then(|info| info.retry_delay);
                let message = clean_message(status.message());
                let error = format!("gRPC {:?}: {message}", status.code());
                classify_grpc(status.code(), delay, error)
            }
        }
    }
}

/// Writes the pre-encoded request as it is; decodes the response as `M`.
struct Raw<M>(PhantomData<fn() -> M>);

impl<M> Default for Raw<M> {
    fn default() -> Self {
        Raw(PhantomData)
    }
}

impl<M: prost::Message + Default + Send + 'static> Codec for Raw<M> {
    type Encode = Bytes;
    type Decode = M;
    type Encoder = RawEncoder;
    type Decoder = ProstDecoder<M>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ProstDecoder<M> {
        ProstDecoder(PhantomData)
    }
}

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

struct ProstDecoder<M>(PhantomData<fn() -> M>);

impl<M: prost::Message + Default> Decoder for ProstDecoder<M> {
    type Item = M;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<M>, Status> {
        M::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("undecodable OTLP response: {e}")))
    }
}
