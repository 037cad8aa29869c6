//! The OTLP/gRPC side of the fault receiver: gRPC over plain HTTP/2 (h2),
//! so that any status, trailer and `grpc-status-details-bin` can be scripted.

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use tokio::net::{TcpListener, TcpStream};
use tonic_types::{ErrorDetails, StatusExt};

use super::otlp::{decode, gunzip, response};
use super::{next_reply, record, Answer, Shared, Signal, Transport};

const TRACES: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const METRICS: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

pub(super) async fn serve(listener: TcpListener, shared: Shared) {
    loop {
        if let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(connection(socket, shared.clone()));
        }
    }
}

async fn connection(socket: TcpStream, shared: Shared) {
    let Ok(mut conn) = h2::server::handshake(socket).await else {
        return;
    };
    // accept() also drives the connection's I/O for the spawned streams.
    while let Some(Ok((request, respond))) = conn.accept().await {
        tokio::spawn(stream(request, respond, shared.clone()));
    }
}

fn grpc_response(extra: &[(String, String)], status: Option<&tonic::Status>) -> http::Response<()> {
    let mut r = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc");
    for (k, v) in extra {
        r = r.header(k.as_str(), v.as_str());
    }
    let mut r = r.body(()).expect("a valid response head");
    if let Some(s) = status {
        let _ = s.add_header(r.headers_mut());
    }
    r
}

async fn read_body(mut body: RecvStream) -> Result<Vec<u8>, h2::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

async fn stream(
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    shared: Shared,
) {
    let signal = match request.uri().path() {
        TRACES => Signal::Traces,
        METRICS => Signal::Metrics,
        _ => {
            let s = tonic::Status::unimplemented("unknown method");
            let _ = respond.send_response(grpc_response(&[], Some(&s)), true);
            return;
        }
    };
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| {
            let v = v.to_str().unwrap_or_default().to_string();
            (k.as_str().to_string(), v)
        })
        .collect();
    let Ok(frame) = read_body(request.into_body()).await else {
        return;
    };
    // One length-prefixed message: compressed flag, 4-byte length, bytes.
    assert!(frame.len() >= 5, "a gRPC message frame");
    let compressed = frame[0] == 1;
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    let message = &frame[5..5 + len];
    let message = if compressed {
        gunzip(message)
    } else {
        message.to_vec()
    };

    let mut req = decode(signal, Transport::Grpc, headers, compressed, &message);
    let reply = next_reply(&shared, signal);
    req.answered = reply.answer.clone();
    record(&shared, req);
    tokio::time::sleep(reply.delay).await;

    let status = match &reply.answer {
        Answer::Ok | Answer::Partial { .. } => None,
        Answer::Grpc {
            code,
            message,
            retry_info: Some(d),
        } => Some(tonic::Status::with_error_details(
            *code,
            message.clone(),
            ErrorDetails::with_retry_info(Some(*d)),
        )),
        Answer::Grpc { code, message, .. } => Some(tonic::Status::new(*code, message.clone())),
        Answer::Http { .. } => Some(tonic::Status::internal("an HTTP answer scripted for gRPC")),
    };
    if let Some(s) = status {
        // Trailers-only response: the status in the one HEADERS frame.
        let _ = respond.send_response(grpc_response(&reply.headers, Some(&s)), true);
        return;
    }
    let Ok(mut send) = respond.send_response(grpc_response(&reply.headers, None), false) else {
        return;
    };
    let body = response(signal, &reply);
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(0);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    let _ = send.send_data(Bytes::from(out), false);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let _ = send.send_trailers(trailers);
}
