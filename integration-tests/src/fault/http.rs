//! The OTLP/HTTP side of the fault receiver: a small HTTP/1.1 server
//! (keep-alive, `Content-Length` bodies, gzip) on a tokio listener.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::otlp::{decode, gunzip, response, rpc_status};
use super::{next_reply, record, Answer, Shared, Signal, Transport};

pub(super) async fn serve(listener: TcpListener, shared: Shared) {
    loop {
        if let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(connection(socket, shared.clone()));
        }
    }
}

/// Serve requests on one connection until the client closes it.
async fn connection(socket: TcpStream, shared: Shared) {
    let mut reader = BufReader::new(socket);
    while let Ok(Some(())) = one_request(&mut reader, &shared).await {}
}

async fn one_request(reader: &mut BufReader<TcpStream>, shared: &Shared) -> io::Result<Option<()>> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).await? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await?;
    let gzip = header("content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if gzip {
        body = gunzip(&body);
    }

    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let signal = match path {
        "/v1/traces" => Signal::Traces,
        "/v1/metrics" => Signal::Metrics,
        _ => {
            write(reader, 404, &[], b"unknown path").await?;
            return Ok(Some(()));
        }
    };
    let mut request = decode(signal, Transport::Http, headers, gzip, &body);
    let reply = next_reply(shared, signal);
    request.answered = reply.answer.clone();
    record(shared, request);
    tokio::time::sleep(reply.delay).await;

    let (status, body) = match &reply.answer {
        Answer::Ok | Answer::Partial { .. } => (200, response(signal, &reply)),
        Answer::Http { status, message } => (*status, rpc_status(2, message)),
        Answer::Grpc { .. } => (500, rpc_status(13, "a gRPC answer scripted for HTTP")),
    };
    write(reader, status, &reply.headers, &body).await?;
    Ok(Some(()))
}

async fn write(
    reader: &mut BufReader<TcpStream>,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} Scripted\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let out = reader.get_mut();
    out.write_all(head.as_bytes()).await?;
    out.write_all(body).await?;
    out.flush().await
}
