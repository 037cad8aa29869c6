//! A bad configuration is a `BuildError`, from plain sync code and from
//! inside any tokio runtime: `build()` never panics (dropping a half-built
//! export runtime inside another runtime used to).

use std::time::Duration;

use flowtel::{BuildError, Flowtel, Protocol};

fn build_with_bad_header(protocol: Protocol) -> Result<Flowtel, BuildError> {
    Flowtel::builder()
        // Nothing needs to listen: the build fails before any connection.
        .with_endpoint("http://127.0.0.1:9")
        .with_protocol(protocol)
        .with_header("bad header", "x")
        .build()
}

fn assert_bad_header(r: Result<Flowtel, BuildError>) {
    match r {
        Err(BuildError::InvalidConfig { setting, problem }) => {
            assert!(setting.contains("bad header"), "{setting}: {problem}");
        }
        Err(other) => panic!("expected InvalidConfig, got {other}"),
        Ok(f) => {
            let _ = f.shutdown(Duration::from_secs(1));
            panic!("a header name with a space was accepted");
        }
    }
}

#[test]
fn bad_header_from_sync_code() {
    assert_bad_header(build_with_bad_header(Protocol::Grpc));
    assert_bad_header(build_with_bad_header(Protocol::HttpProtobuf));
}

#[tokio::test(flavor = "current_thread")]
async fn bad_header_inside_a_current_thread_runtime() {
    assert_bad_header(build_with_bad_header(Protocol::Grpc));
    assert_bad_header(build_with_bad_header(Protocol::HttpProtobuf));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_header_inside_a_multi_thread_runtime() {
    assert_bad_header(build_with_bad_header(Protocol::Grpc));
    assert_bad_header(build_with_bad_header(Protocol::HttpProtobuf));
}

#[tokio::test(flavor = "current_thread")]
async fn bad_header_value_and_protocol_inside_a_runtime() {
    let r = Flowtel::builder()
        .with_endpoint("http://127.0.0.1:9")
        .with_header("x-key", "line\nbreak")
        .build();
    assert!(
        matches!(r, Err(BuildError::InvalidConfig { .. })),
        "{:?}",
        r.err()
    );
}
