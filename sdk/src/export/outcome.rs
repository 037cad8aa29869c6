//! What became of one OTLP export request, classified by the OTLP
//! specification's rules: accepted (perhaps in part), to be retried (perhaps
//! after a delay the collector asked for), or rejected for good.

use std::time::{Duration, SystemTime};

/// The longest pause a collector may impose through `Retry-After` or
/// `RetryInfo`: a far-future HTTP-date or a typo must not stall export
/// for hours (the span buffer keeps filling meanwhile, and drops are counted).
pub(crate) const MAX_SERVER_DELAY: Duration = Duration::from_secs(600);

/// The outcome of one export request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    /// Accepted. `rejected` items were refused in a partial success;
    /// `message` is the collector's `error_message`, if any.
    Accepted {
        rejected: u64,
        message: Option<String>,
    },
    /// Transient failure (unreachable, timeout, 429/502/503/504,
    /// UNAVAILABLE, ...): send the same data again, no sooner than `after`
    /// when the collector said so.
    Retry {
        after: Option<Duration>,
        error: String,
    },
    /// Refused for good (400, 401, 403, INVALID_ARGUMENT, ...): do not send
    /// this data again.
    Rejected { error: String },
    /// A local sink (console, memory, callback) failed; nothing to retry.
    Failed { error: String },
}

impl Outcome {
    /// Everything accepted.
    pub(crate) const OK: Outcome = Outcome::Accepted {
        rejected: 0,
        message: None,
    };
}

/// A partial success from its `rejected_*` count and `error_message`.
pub(crate) fn partial(rejected: i64, message: String) -> Outcome {
    Outcome::Accepted {
        rejected: u64::try_from(rejected).unwrap_or(0),
        message: (!message.is_empty()).then_some(message),
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date, capped.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(delay.min(MAX_SERVER_DELAY))
}

/// OTLP/HTTP: 429, 502, 503 and 504 are retried (honouring `Retry-After`);
/// every other 4xx and 5xx is not.
pub(crate) fn classify_http(status: u16, retry_after: Option<Duration>, error: String) -> Outcome {
    match status {
        429 | 502 | 503 | 504 => Outcome::Retry {
            after: retry_after,
            error,
        },
        _ => Outcome::Rejected { error },
    }
}

/// OTLP/gRPC: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE,
/// UNAVAILABLE and DATA_LOSS are retried; RESOURCE_EXHAUSTED only when the
/// server sent a `RetryInfo`; every other code is not. The `RetryInfo` delay
/// is honoured whenever present.
pub(crate) fn classify_grpc(
    code: tonic::Code,
    retry_info: Option<Duration>,
    error: String,
) -> Outcome {
    use tonic::Code::*;
    let after = retry_info.map(|d| d.min(MAX_SERVER_DELAY));
    match code {
        Cancelled | DeadlineExceeded | Aborted | OutOfRange | Unavailable | DataLoss => {
            Outcome::Retry { after, error }
        }
        ResourceExhausted if after.is_some() => Outcome::Retry { after, error },
        _ => Outcome::Rejected { error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retried(o: &Outcome) -> bool {
        matches!(o, Outcome::Retry { .. })
    }

    #[test]
    fn http_statuses_follow_the_spec() {
        for s in [429, 502, 503, 504] {
            assert!(retried(&classify_http(s, None, String::new())), "{s}");
        }
        for s in [400, 401, 403, 404, 405, 408, 409, 413, 415, 500, 501, 505] {
            assert!(!retried(&classify_http(s, None, String::new())), "{s}");
        }
    }

    #[test]
    fn grpc_codes_follow_the_spec() {
        use tonic::Code::*;
        for c in [
            Cancelled,
            DeadlineExceeded,
            Aborted,
            OutOfRange,
            Unavailable,
            DataLoss,
        ] {
            assert!(retried(&classify_grpc(c, None, String::new())), "{c:?}");
        }
        for c in [
            Unknown,
            InvalidArgument,
            NotFound,
            AlreadyExists,
            PermissionDenied,
            FailedPrecondition,
            Unimplemented,
            Internal,
            Unauthenticated,
            ResourceExhausted,
        ] {
            assert!(!retried(&classify_grpc(c, None, String::new())), "{c:?}");
        }
        let d = Some(Duration::from_secs(3));
        assert_eq!(
            classify_grpc(ResourceExhausted, d, "x".into()),
            Outcome::Retry {
                after: d,
                error: "x".into()
            }
        );
    }

    #[test]
    fn retry_after_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(parse_retry_after(" 2 ", now), Some(Duration::from_secs(2)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("86400", now), Some(MAX_SERVER_DELAY));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn partial_success_counts() {
        assert_eq!(partial(0, String::new()), Outcome::OK);
        assert_eq!(
            partial(2, "old".into()),
            Outcome::Accepted {
                rejected: 2,
                message: Some("old".into())
            }
        );
        assert_eq!(
            partial(-5, String::new()),
            Outcome::OK,
            "a negative count is nonsense, not a rejection"
        );
    }
}
