//! Zoom webhooks: signature check (`x-zm-signature` = `v0=` + hex
//! HMAC-SHA256(secret, `v0:{timestamp}:{raw body}`)), URL validation, event
//! parsing and handling (deauthorization, number events), de-duplication.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Largest body accepted.
pub const MAX_BODY: usize = 256 * 1024;
/// Allowed distance between `x-zm-request-timestamp` and now, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a delivery was refused. Never sent to the caller (they get a bare 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("no webhook secret is configured")]
    NoSecret,
    #[error("body larger than 256 KiB")]
    BodyTooLarge,
    #[error("header {0} missing")]
    MissingHeader(&'static str),
    #[error("header {0} present more than once")]
    DuplicateHeader(&'static str),
    #[error("timestamp is not a decimal number of seconds")]
    BadTimestamp,
    #[error("timestamp outside the allowed window")]
    StaleTimestamp,
    #[error("signature is not v0=<64 hex digits>")]
    BadSignatureFormat,
    #[error("signature does not match")]
    SignatureMismatch,
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
}

/// `v0=<hex>` for a body, as Zoom computes it.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(b"v0:");
    m.update(timestamp.as_bytes());
    m.update(b":");
    m.update(body);
    format!("v0={}", hex::encode(m.finalize().into_bytes()))
}

/// `encryptedToken` of the URL validation: hex HMAC-SHA256(secret, plainToken).
pub fn encrypt_plain_token(secret: &str, plain_token: &str) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(plain_token.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Checks a delivery against the current and previous secrets, in constant
/// time. Returns the index of the secret that matched.
pub fn verify(
    secrets: &[SecretString],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<usize, Rejection> {
    if secrets.is_empty() || secrets.iter().all(|s| s.expose_secret().is_empty()) {
        return Err(Rejection::NoSecret);
    }
    if body.len() > MAX_BODY {
        return Err(Rejection::BodyTooLarge);
    }
    let ts = timestamp.ok_or(Rejection::MissingHeader("x-zm-request-timestamp"))?;
    let sig = signature.ok_or(Rejection::MissingHeader("x-zm-signature"))?;
    if ts.contains(',') {
        return Err(Rejection::DuplicateHeader("x-zm-request-timestamp"));
    }
    if sig.contains(',') {
        return Err(Rejection::DuplicateHeader("x-zm-signature"));
    }
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::BadTimestamp);
    }
    let t: i64 = ts.parse().map_err(|_| Rejection::BadTimestamp)?;
    if (now_unix - t).abs() > TOLERANCE_SECS {
        return Err(Rejection::StaleTimestamp);
    }
    let hex_sig = sig
        .strip_prefix("v0=")
        .ok_or(Rejection::BadSignatureFormat)?;
    if hex_sig.len() != 64 {
        return Err(Rejection::BadSignatureFormat);
    }
    let given = hex::decode(hex_sig).map_err(|_| Rejection::BadSignatureFormat)?;
    let mut matched = None;
    // Every configured secret is tried, so timing does not tell which matched.
    for (i, secret) in secrets.iter().enumerate() {
        let secret = secret.expose_secret();
        if secret.is_empty() {
            continue;
        }
        let mut m = mac(secret.as_bytes());
        m.update(b"v0:");
        m.update(ts.as_bytes());
        m.update(b":");
        m.update(body);
        if m.verify_slice(&given).is_ok() && matched.is_none() {
            matched = Some(i);
        }
    }
    matched.ok_or(Rejection::SignatureMismatch)
}

/// The envelope every Zoom event shares.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub event: String,
    #[serde(default)]
    pub event_ts: Option<i64>,
    #[serde(default)]
    pub payload: serde_json::Value,
}

impl Envelope {
    /// `event_ts` at the top level, or inside `payload` (both shapes exist).
    pub fn event_ts(&self) -> Option<i64> {
        self.event_ts
            .or_else(|| self.payload.get("event_ts").and_then(|v| v.as_i64()))
    }
}

/// `app_deauthorized`'s payload, tolerant of every published shape.
#[derive(Debug, Deserialize)]
pub struct Deauthorization {
    pub account_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub deauthorization_time: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    pub user_data_retention: Option<bool>,
}

fn bool_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Str(String),
    }
    Ok(match Option::<B>::deserialize(d)? {
        None => None,
        Some(B::Bool(b)) => Some(b),
        Some(B::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
    })
}

/// The de-duplication key of a delivery: Zoom's retries resend the same body.
pub fn delivery_key(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// What a delivery led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not from Zoom (or not now): answer 401 and nothing else.
    Rejected(Rejection),
    UrlValidation {
        plain_token: String,
        encrypted_token: String,
    },
    Processed {
        event: String,
    },
    Duplicate,
    Ignored {
        event: String,
    },
    /// Signed, but not an event this service can read.
    Malformed(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
}

/// How long a delivery key is remembered (Zoom's retries end after ~85 minutes).
const DEDUP_TTL_SECS: i64 = 3 * 24 * 3600;

/// Verifies and handles one delivery.
pub async fn handle_delivery(
    ctx: &crate::AppContext,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<Outcome, WebhookError> {
    let secret = ctx.secrets.get().await?;
    let now = ctx.clock.now();
    let matched = match verify(
        &secret.webhook_secret_tokens,
        timestamp,
        signature,
        body,
        now.unix_timestamp(),
    ) {
        Ok(i) => i,
        Err(r) => {
            tracing::warn!(reason = %r, "webhook delivery rejected");
            crate::metrics::count("WebhookRejections", 1);
            return Ok(Outcome::Rejected(r));
        }
    };
    let Ok(env) = serde_json::from_slice::<Envelope>(body) else {
        return Ok(Outcome::Malformed("the body is not a Zoom event"));
    };
    if env.event == "endpoint.url_validation" {
        let Some(plain) = env
            .payload
            .get("plainToken")
            .and_then(|v| v.as_str())
            .filter(|p| p.len() <= 256)
        else {
            return Ok(Outcome::Malformed("payload.plainToken missing"));
        };
        let key = secret.webhook_secret_tokens[matched].expose_secret();
        return Ok(Outcome::UrlValidation {
            plain_token: plain.to_owned(),
            encrypted_token: encrypt_plain_token(key, plain),
        });
    }
    let key = delivery_key(body);
    if !ctx
        .store
        .record_delivery(&key, now.unix_timestamp() + DEDUP_TTL_SECS)
        .await?
    {
        tracing::info!(event = %env.event, "duplicate webhook delivery ignored");
        return Ok(Outcome::Duplicate);
    }
    let acted = act(ctx, &env, &secret.zoom_client_id, now).await;
    match acted {
        Ok(o) => Ok(o),
        Err(e) => {
            // Let Zoom's retry try again.
            ctx.store.forget_delivery(&key).await?;
            Err(e)
        }
    }
}

async fn act(
    ctx: &crate::AppContext,
    env: &Envelope,
    client_id: &str,
    now: time::OffsetDateTime,
) -> Result<Outcome, WebhookError> {
    use crate::ids::{E164Number, ZoomAccountId};
    use crate::store::AuditItem;
    let zoom = env
        .payload
        .get("account_id")
        .and_then(|v| v.as_str())
        .and_then(|s| ZoomAccountId::parse(s).ok());
    match env.event.as_str() {
        "app_deauthorized" => {
            let Ok(d) = serde_json::from_value::<Deauthorization>(env.payload.clone()) else {
                return Ok(Outcome::Malformed("app_deauthorized payload"));
            };
            if d.client_id.as_deref().is_some_and(|c| c != client_id) {
                tracing::warn!("app_deauthorized for another app ignored");
                return Ok(Outcome::Ignored {
                    event: env.event.clone(),
                });
            }
            let Ok(zoom) = ZoomAccountId::parse(&d.account_id) else {
                return Ok(Outcome::Malformed("payload.account_id"));
            };
            let Some(account) = ctx.store.zoom_owner(&zoom).await? else {
                tracing::info!(zoom_account = %zoom, "app_deauthorized for an account we do not hold");
                return Ok(Outcome::Ignored {
                    event: env.event.clone(),
                });
            };
            let retain = d.user_data_retention == Some(true);
            let purge_after = (!retain)
                .then(|| now.unix_timestamp() + ctx.config.deauth_retention_days * 24 * 3600);
            let detail = format!(
                "zoom_account_id={zoom}; event_ts={}; user_data_retention={}; purge_after={}",
                env.event_ts().map(|t| t.to_string()).unwrap_or_default(),
                retain,
                purge_after
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "none".into())
            );
            let audit = AuditItem::new(
                &account,
                now,
                "zoom_app_deauthorized",
                "zoom:webhook",
                Some(detail),
            );
            if ctx
                .store
                .mark_disconnected(&account, &zoom, purge_after, &audit, now)
                .await?
            {
                tracing::info!(portal_account = %account, zoom_account = %zoom, "app deauthorized: tokens deleted");
            }
            Ok(Outcome::Processed {
                event: env.event.clone(),
            })
        }
        "phone.peering_number_cnam_updated" | "phone.peering_number_emergency_address_updated" => {
            let Some(zoom) = zoom else {
                return Ok(Outcome::Malformed("payload.account_id"));
            };
            let Some(account) = ctx.store.zoom_owner(&zoom).await? else {
                return Ok(Outcome::Ignored {
                    event: env.event.clone(),
                });
            };
            let obj = env.payload.get("object").cloned().unwrap_or_default();
            let (kind, value) = if env.event.ends_with("cnam_updated") {
                let v = obj.get("cnam").and_then(|v| v.as_str()).unwrap_or_default();
                (
                    "cnam",
                    aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned()),
                )
            } else {
                let Some(addr) = obj.get("emergency_address").filter(|a| a.is_object()) else {
                    return Ok(Outcome::Malformed("object.emergency_address"));
                };
                (
                    "emergency_address",
                    aws_sdk_dynamodb::types::AttributeValue::S(addr.to_string()),
                )
            };
            let ts = env.event_ts().unwrap_or(now.unix_timestamp() * 1000);
            let numbers = obj
                .get("phone_numbers")
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default();
            for n in numbers {
                match n.as_str().map(E164Number::normalize) {
                    Some(Ok(num)) => {
                        ctx.store
                            .put_number_event(&account, &num, kind, value.clone(), ts)
                            .await?;
                    }
                    _ => tracing::warn!(event = %env.event, "number event names an invalid number"),
                }
            }
            Ok(Outcome::Processed {
                event: env.event.clone(),
            })
        }
        other => {
            tracing::info!(event = other, "webhook event not handled");
            Ok(Outcome::Ignored {
                event: other.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference §7.2.
    const SECRET: &str = "test-secret";
    const TS: &str = "1688752773";
    const BODY: &str = r#"{"event":"endpoint.url_validation","payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680}"#;
    const SIG: &str = "v0=d678f77736875bcaf4d8b6085a3d75a58567256db934c752cd2d680930d778b3";
    const NOW: i64 = 1688752773;

    fn secrets(v: &[&str]) -> Vec<SecretString> {
        v.iter()
            .map(|s| SecretString::from(s.to_string()))
            .collect()
    }

    #[test]
    fn known_answer_vectors() {
        assert_eq!(sign(SECRET, TS, BODY.as_bytes()), SIG);
        assert_eq!(
            encrypt_plain_token(SECRET, "qgg8vlvZRS6UYooatFL8Aw"),
            "82079ed66225fed153e0854735aa9702e1d67137a69c96a00957941f942b8de7"
        );
        assert_eq!(
            verify(
                &secrets(&[SECRET]),
                Some(TS),
                Some(SIG),
                BODY.as_bytes(),
                NOW
            ),
            Ok(0)
        );
    }

    #[test]
    fn forgery_matrix() {
        let s = secrets(&[SECRET]);
        let body = BODY.as_bytes();
        let v = |ts: Option<&str>, sig: Option<&str>, body: &[u8], now: i64| {
            verify(&s, ts, sig, body, now)
        };
        assert_eq!(
            verify(&secrets(&["other"]), Some(TS), Some(SIG), body, NOW),
            Err(Rejection::SignatureMismatch)
        );
        // One flipped bit in the body, the timestamp, the signature.
        let mut b = body.to_vec();
        b[10] ^= 1;
        assert_eq!(
            v(Some(TS), Some(SIG), &b, NOW),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            v(Some("1688752772"), Some(SIG), body, NOW),
            Err(Rejection::SignatureMismatch)
        );
        let flipped = format!(
            "{}{}",
            &SIG[..SIG.len() - 1],
            if SIG.ends_with('3') { '2' } else { '3' }
        );
        assert_eq!(
            v(Some(TS), Some(&flipped), body, NOW),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            v(
                Some(TS),
                Some(&SIG.to_uppercase().replace("V0=", "v0=")),
                body,
                NOW
            ),
            Ok(0),
            "hex is case-insensitive"
        );
        // Truncated, missing, duplicated.
        assert_eq!(
            v(Some(TS), Some(&SIG[..SIG.len() - 2]), body, NOW),
            Err(Rejection::BadSignatureFormat)
        );
        assert_eq!(
            v(Some(TS), Some(&SIG[3..]), body, NOW),
            Err(Rejection::BadSignatureFormat)
        );
        assert_eq!(
            v(None, Some(SIG), body, NOW),
            Err(Rejection::MissingHeader("x-zm-request-timestamp"))
        );
        assert_eq!(
            v(Some(TS), None, body, NOW),
            Err(Rejection::MissingHeader("x-zm-signature"))
        );
        assert_eq!(
            v(Some(TS), Some(&format!("{SIG},{SIG}")), body, NOW),
            Err(Rejection::DuplicateHeader("x-zm-signature"))
        );
        assert_eq!(
            v(Some(&format!("{TS},{TS}")), Some(SIG), body, NOW),
            Err(Rejection::DuplicateHeader("x-zm-request-timestamp"))
        );
        // Stale and future.
        assert_eq!(
            v(Some(TS), Some(SIG), body, NOW + 301),
            Err(Rejection::StaleTimestamp)
        );
        assert_eq!(
            v(Some(TS), Some(SIG), body, NOW - 301),
            Err(Rejection::StaleTimestamp)
        );
        assert_eq!(v(Some(TS), Some(SIG), body, NOW + 300), Ok(0));
        assert_eq!(
            v(Some("-1688752773"), Some(SIG), body, NOW),
            Err(Rejection::BadTimestamp)
        );
        assert_eq!(
            v(Some("1688752773000"), Some(SIG), body, NOW),
            Err(Rejection::BadTimestamp)
        );
        // The same JSON with other spacing is other bytes.
        let spaced = BODY.replace(",", ", ");
        assert_eq!(
            v(Some(TS), Some(SIG), spaced.as_bytes(), NOW),
            Err(Rejection::SignatureMismatch)
        );
        // Non-UTF-8 bodies are just bytes: signed → accepted, else refused.
        let bin = [0xff, 0xfe, 0x00, 0x80];
        let bin_sig = sign(SECRET, TS, &bin);
        assert_eq!(v(Some(TS), Some(&bin_sig), &bin, NOW), Ok(0));
        assert_eq!(
            v(Some(TS), Some(SIG), &bin, NOW),
            Err(Rejection::SignatureMismatch)
        );
        // Oversized.
        let big = vec![b'a'; MAX_BODY + 1];
        assert_eq!(
            v(Some(TS), Some(&sign(SECRET, TS, &big)), &big, NOW),
            Err(Rejection::BodyTooLarge)
        );
        // Fail closed.
        assert_eq!(
            verify(&[], Some(TS), Some(SIG), body, NOW),
            Err(Rejection::NoSecret)
        );
        assert_eq!(
            verify(&secrets(&[""]), Some(TS), Some(SIG), body, NOW),
            Err(Rejection::NoSecret)
        );
    }

    #[test]
    fn previous_secret_accepted_during_rotation() {
        assert_eq!(
            verify(
                &secrets(&["new-secret", SECRET]),
                Some(TS),
                Some(SIG),
                BODY.as_bytes(),
                NOW
            ),
            Ok(1)
        );
        assert_eq!(
            verify(
                &secrets(&["new-secret", "older"]),
                Some(TS),
                Some(SIG),
                BODY.as_bytes(),
                NOW
            ),
            Err(Rejection::SignatureMismatch)
        );
    }

    /// 10 000 random mutations of a valid delivery (body bytes, timestamp,
    /// signature, in any combination): none is accepted.
    #[test]
    fn random_mutations_are_never_accepted() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_2026);
        let s = secrets(&[SECRET]);
        let mut accepted = 0;
        for _ in 0..10_000 {
            let mut body = BODY.as_bytes().to_vec();
            let mut ts = TS.to_string();
            let mut sig = SIG.to_string();
            let mut changed = false;
            while !changed {
                match rng.gen_range(0..7) {
                    0 => {
                        let i = rng.gen_range(0..body.len());
                        body[i] ^= 1 << rng.gen_range(0..8);
                    }
                    1 => {
                        let i = rng.gen_range(0..=body.len());
                        body.insert(i, rng.r#gen());
                    }
                    2 if body.len() > 1 => {
                        let i = rng.gen_range(0..body.len());
                        body.remove(i);
                    }
                    3 => {
                        let i = rng.gen_range(3..sig.len());
                        let mut b = sig.clone().into_bytes();
                        b[i] = b"0123456789abcdef"[rng.gen_range(0..16)];
                        sig = String::from_utf8(b).unwrap();
                    }
                    4 => {
                        let d: i64 = rng.gen_range(-299..=299);
                        ts = (NOW + d).to_string();
                    }
                    5 => sig.truncate(rng.gen_range(0..sig.len())),
                    _ => {
                        let n: u64 = rng.gen_range(1..=10);
                        body.extend(std::iter::repeat_n(b' ', n as usize));
                    }
                }
                changed = body != BODY.as_bytes() || ts != TS || sig != SIG;
            }
            if verify(&s, Some(&ts), Some(&sig), &body, NOW).is_ok() {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 0);
    }

    #[test]
    fn deauthorization_payload_shapes() {
        let a: Envelope = serde_json::from_str(
            r#"{"event":"app_deauthorized","event_ts":1740439732278,"payload":{"account_id":"EabCDEFghiLHMA","user_id":"z9","signature":"82","deauthorization_time":"2019-06-17T13:52:28.632Z","client_id":"c","user_data_retention":"false"}}"#,
        )
        .unwrap();
        assert_eq!(a.event_ts(), Some(1740439732278));
        let d: Deauthorization = serde_json::from_value(a.payload).unwrap();
        assert_eq!(
            (d.account_id.as_str(), d.user_data_retention),
            ("EabCDEFghiLHMA", Some(false))
        );
        let b: Envelope = serde_json::from_str(
            r#"{"event":"app_deauthorized","payload":{"account_id":"X","client_id":"c","event_ts":17,"user_data_retention":true}}"#,
        )
        .unwrap();
        assert_eq!(b.event_ts(), Some(17));
        let d: Deauthorization = serde_json::from_value(b.payload).unwrap();
        assert_eq!(d.user_data_retention, Some(true));
        let c: Deauthorization = serde_json::from_str(r#"{"account_id":"X"}"#).unwrap();
        assert_eq!(c.user_data_retention, None);
    }
}
