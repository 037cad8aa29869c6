//! What must never leave the process: `extra` keys that look like secrets
//! are refused as span or metric attributes, whatever the allow-lists say.

/// The word that makes `key` look like a secret, if any: a segment of the
/// key (split at non-alphanumerics and camelCase) from a deny list. The deny
/// list wins over every allow-list.
pub(crate) fn secret_word(key: &str) -> Option<&'static str> {
    const DENY: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "auth",
        "authorization",
        "cookie",
        "credential",
        "credentials",
        "apikey",
        "session",
        "jwt",
        "bearer",
        "private",
    ];
    let mut spaced = String::with_capacity(key.len() + 4);
    for (i, c) in key.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            spaced.push(' ');
        }
        spaced.extend(c.to_lowercase());
    }
    let joined: String = spaced.chars().filter(|c| c.is_alphanumeric()).collect();
    if joined.contains("apikey") || joined.contains("accesskey") {
        return Some("api key");
    }
    spaced
        .split(|c: char| !c.is_alphanumeric())
        .find_map(|seg| DENY.iter().find(|d| **d == seg).copied())
}

/// A credential flowtel holds (the Prometheus endpoint's bearer token):
/// its `Debug` never shows it, so that a logged builder or configuration
/// does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let s = format!("{:?}", Some(Secret("s3cr3t".into())));
        assert!(!s.contains("s3cr3t"), "{s}");
        let b = crate::Flowtel::builder().with_prometheus_bearer_token("t0k3n-v4lue");
        assert!(!format!("{b:?}").contains("t0k3n-v4lue"));
    }
}
