//! Request-level rules applied once a head has parsed, before routing and
//! the pipeline: what the gateway refuses to forward at all, whatever the
//! configuration.
//!
//! They run after parsing rather than inside it so the refused request is
//! still logged with its method and target (an operator wants to see the
//! probe), and a bodiless refused request is framed like any other.

use super::head::eq_ci;
use super::path_check;
use super::request::RequestHead;
use super::HttpError;

/// Methods a 405 advertises in `Allow` (RFC 9110 §15.5.6): what the gateway
/// forwards. `TRACE` (a backend would echo the request, credentials
/// included, back to the page that sent it: cross-site tracing; nginx
/// answers it 405 too) and `CONNECT` (a gateway is not a forward proxy) are
/// answered 405 instead. Extension methods are forwarded too but cannot be
/// listed.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Checks a parsed head (`buf` is the buffer it was parsed from). When
/// `normalizing` (routes are configured), the path is left to
/// `super::normalize`, which resolves dot segments rather than refusing them
/// and refuses the rest of what `path_check` does.
pub fn check(buf: &[u8], head: &RequestHead, normalizing: bool) -> Result<(), HttpError> {
    // CONNECT never gets here: its target is not a path, so parsing refuses
    // it. Methods are case-sensitive (RFC 9110 §9.1), but a backend that
    // folds case would still run `trace` as TRACE, so no spelling passes.
    if eq_ci(head.method_span.get(buf), b"TRACE") {
        return Err(HttpError::MethodNotAllowed);
    }
    if normalizing {
        return Ok(());
    }
    path_check::check(head.path.get(buf)).map_err(|v| HttpError::BadRequest(v.reason()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::RequestLimits;

    fn verdict(raw: &[u8]) -> Result<(), HttpError> {
        let mut head = RequestHead::default();
        let limits = RequestLimits {
            max_uri: 8192,
            max_body: 1 << 20,
        };
        assert_eq!(head.parse(raw, &limits), Ok(true));
        check(raw, &head, false)
    }

    #[test]
    fn trace_is_refused_other_methods_pass() {
        for m in ["TRACE", "trace", "Trace"] {
            let raw = format!("{m} / HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(
                verdict(raw.as_bytes()),
                Err(HttpError::MethodNotAllowed),
                "{m}"
            );
        }
        for m in ["GET", "POST", "OPTIONS", "PROPFIND", "TRACES", "get"] {
            let raw = format!("{m} / HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(verdict(raw.as_bytes()), Ok(()), "{m}");
        }
        assert_eq!(verdict(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(()));
    }

    #[test]
    fn the_path_is_judged_in_both_target_forms_and_the_query_is_not() {
        assert_eq!(
            verdict(b"GET /public/../x HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err(HttpError::BadRequest("path contains a dot segment"))
        );
        assert_eq!(
            verdict(b"GET http://a/public/%2E%2e/x HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err(HttpError::BadRequest("path contains a dot segment"))
        );
        // The authority is not part of the path.
        assert_eq!(
            verdict(b"GET http://a..b/x HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(())
        );
        assert_eq!(
            verdict(b"GET http://a?x=/../%2f HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(())
        );
        assert_eq!(
            verdict(b"GET /p?next=%2F..%2Fadmin HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(())
        );
    }
}
