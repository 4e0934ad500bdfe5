//! HTTP helpers for handlers: RFC 9457 problem details, JSON bodies with a
//! size cap and unknown fields refused, redirects and small HTML pages.

use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub const PROBLEM_JSON: &str = "application/problem+json";
/// Largest JSON body a Portal endpoint accepts.
pub const MAX_JSON_BODY: usize = 16 * 1024;

/// An `application/problem+json` error. `field` names the offending input.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: u16, title: &'static str, detail: impl Into<String>) -> Self {
        let slug = title.to_ascii_lowercase().replace(' ', "-");
        Self {
            kind: format!("/problems/{slug}"),
            title,
            status,
            detail: detail.into(),
            field: None,
        }
    }
    pub fn bad_request(field: &str, detail: impl Into<String>) -> Self {
        let mut p = Self::new(400, "Invalid request", detail);
        p.field = Some(field.to_owned());
        p
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "a valid Portal token is required")
    }
    /// A refused webhook: nothing that would help a forger.
    pub fn unauthorized_webhook() -> Self {
        Self::new(401, "Unauthorized", "the request could not be verified")
    }
    pub fn forbidden() -> Self {
        Self::new(
            403,
            "Forbidden",
            "this token does not grant access to that account",
        )
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "Not found", detail)
    }
    pub fn internal() -> Self {
        Self::new(
            500,
            "Internal error",
            "the request could not be completed; it is safe to retry",
        )
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(503, "Service unavailable", detail)
    }

    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::to_string(&self).unwrap_or_else(|_| "{}".into());
        response(self.status, PROBLEM_JSON, Body::Text(body))
    }
}

fn response(status: u16, content_type: &str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        h.insert(http::header::CONTENT_TYPE, v);
    }
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    h.insert(
        "x-content-type-options",
        http::HeaderValue::from_static("nosniff"),
    );
    r
}

pub fn http_header_content_type() -> http::HeaderName {
    http::header::CONTENT_TYPE
}

pub fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(s) => response(status, "application/json", Body::Text(s)),
        Err(_) => Problem::internal().into_response(),
    }
}

/// `302` to `location`. No referrer leaves the page (the callback URL held a code).
pub fn redirect(location: &url::Url) -> Response<Body> {
    let mut r = response(302, "text/plain; charset=utf-8", Body::Empty);
    if let Ok(v) = http::HeaderValue::from_str(location.as_str()) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r.headers_mut().insert(
        "referrer-policy",
        http::HeaderValue::from_static("no-referrer"),
    );
    r
}

/// A small self-contained HTML page (for people, e.g. a bad OAuth callback).
pub fn html_page(status: u16, title: &str, message: &str) -> Response<Body> {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
         <h1>{t}</h1><p>{m}</p></body></html>",
        t = escape_html(title),
        m = escape_html(message)
    );
    let mut r = response(status, "text/html; charset=utf-8", Body::Text(page));
    let h = r.headers_mut();
    h.insert(
        "referrer-policy",
        http::HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "content-security-policy",
        http::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    r
}

pub fn escape_html(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Parses an optional JSON body: empty means `None`; otherwise it must be
/// `application/json`, at most [`MAX_JSON_BODY`] bytes, and match `T`
/// (declare `T` with `deny_unknown_fields`).
pub fn optional_json_body<T: DeserializeOwned>(req: &Request) -> Result<Option<T>, Problem> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => return Ok(None),
        Body::Text(s) => s.as_bytes(),
        Body::Binary(b) => b,
        _ => return Err(Problem::bad_request("body", "unsupported body encoding")),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if bytes.len() > MAX_JSON_BODY {
        let mut p = Problem::new(
            413,
            "Payload too large",
            format!("the body is larger than {MAX_JSON_BODY} bytes"),
        );
        p.field = Some("body".into());
        return Err(p);
    }
    let ct = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        let mut p = Problem::new(
            415,
            "Unsupported media type",
            "send the body as application/json",
        );
        p.field = Some("content-type".into());
        return Err(p);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = T::deserialize(&mut de)
        .and_then(|v| de.end().map(|_| v))
        .map_err(|e| {
            let field = field_of(&e.to_string()).unwrap_or_else(|| "body".into());
            Problem::bad_request(&field, format!("malformed JSON body: {e}"))
        })?;
    Ok(Some(v))
}

/// Picks the field name out of serde's message (``unknown field `x` `` / ``missing field `x` ``).
fn field_of(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    let f = &msg[start..start + len];
    (msg.contains("field") && !f.is_empty() && f.len() < 64).then(|| f.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct In {
        return_to: Option<String>,
    }

    fn req(ct: &str, body: &str) -> Request {
        let mut r = Request::new(Body::Text(body.into()));
        r.headers_mut()
            .insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
        r
    }

    #[test]
    fn bodies() {
        assert!(
            optional_json_body::<In>(&req("application/json", ""))
                .unwrap()
                .is_none()
        );
        let ok = optional_json_body::<In>(&req(
            "application/json; charset=utf-8",
            r#"{"return_to":"x"}"#,
        ));
        assert_eq!(ok.unwrap().unwrap().return_to.as_deref(), Some("x"));
        let e =
            optional_json_body::<In>(&req("application/json", r#"{"returnTo":"x"}"#)).unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (400, Some("returnTo")));
        let e = optional_json_body::<In>(&req("application/json", "{")).unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (400, Some("body")));
        let e = optional_json_body::<In>(&req("application/json", r#"{"return_to":"x"} trailing"#))
            .unwrap_err();
        assert_eq!(e.status, 400);
        let e = optional_json_body::<In>(&req("text/plain", "{}")).unwrap_err();
        assert_eq!(e.status, 415);
        let big = format!(r#"{{"return_to":"{}"}}"#, "a".repeat(MAX_JSON_BODY));
        assert_eq!(
            optional_json_body::<In>(&req("application/json", &big))
                .unwrap_err()
                .status,
            413
        );
    }

    #[test]
    fn problem_is_problem_json() {
        let r = Problem::bad_request("account_id", "nope").into_response();
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["content-type"], PROBLEM_JSON);
        let Body::Text(b) = r.body() else { panic!() };
        let v: serde_json::Value = serde_json::from_str(b).unwrap();
        assert_eq!(v["field"], "account_id");
        assert_eq!(v["status"], 400);
    }

    #[test]
    fn html_is_escaped() {
        let r = html_page(400, "t", "<script>x</script>");
        let Body::Text(b) = r.body() else { panic!() };
        assert!(!b.contains("<script>"));
    }
}
