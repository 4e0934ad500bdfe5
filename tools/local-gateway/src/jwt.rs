//! The Portal JWT check, done the way API Gateway's JWT authorizer does it:
//! signature against the issuer's key set, `iss`, `aud`, `exp`/`nbf`, then the
//! route's scopes. Locally the gateway is the issuer too: it makes an ES256
//! key when it starts and mints tokens from a dev-only endpoint.

use std::collections::HashMap;

use anyhow::Context;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::EncodePrivateKey;
use rand::RngCore;
use serde_json::{Map, Value};

pub struct JwtKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

#[derive(Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// 401: missing, malformed, badly signed, expired, wrong issuer or audience.
    Unauthorized,
    /// 403: valid token without a required scope.
    Forbidden,
}

impl JwtKeys {
    /// A fresh P-256 key pair.
    pub fn generate() -> anyhow::Result<Self> {
        let secret = loop {
            let mut b = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut b);
            if let Ok(k) = p256::SecretKey::from_slice(&b) {
                break k;
            }
        };
        let der = secret.to_pkcs8_der().context("encode key")?;
        let encoding = EncodingKey::from_ec_der(der.as_bytes());
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).context("jwk")?;
        let mut kid_bytes = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut kid_bytes);
        let kid: String = kid_bytes.iter().map(|b| format!("{b:02x}")).collect();
        jwk.common.key_id = Some(kid.clone());
        let decoding = DecodingKey::from_jwk(&jwk).context("decoding key")?;
        Ok(Self {
            kid,
            encoding,
            decoding,
            jwk,
        })
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }

    pub fn mint(&self, claims: &Map<String, Value>) -> anyhow::Result<String> {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&h, claims, &self.encoding)?)
    }

    /// Verifies `authorization` (with or without `Bearer `) and returns the
    /// claims as API Gateway passes them on: every value as a string.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        issuer: &str,
        audience: &str,
        required_scopes: &[String],
    ) -> Result<(HashMap<String, String>, Vec<String>), AuthFailure> {
        let raw = authorization.ok_or(AuthFailure::Unauthorized)?.trim();
        let token = raw.strip_prefix("Bearer ").unwrap_or(raw).trim();
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::Unauthorized)?;
        if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(&self.kid) {
            return Err(AuthFailure::Unauthorized);
        }
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[issuer]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.leeway = 0;
        v.validate_nbf = true;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &v)
            .map_err(|_| AuthFailure::Unauthorized)?;
        let claims = data.claims;
        let scopes: Vec<String> = match claims.get("scope").or_else(|| claims.get("scp")) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => vec![],
        };
        if !required_scopes.is_empty() && !required_scopes.iter().any(|r| scopes.contains(r)) {
            return Err(AuthFailure::Forbidden);
        }
        let flat = claims
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s,
                    Value::Array(a) => format!(
                        "[{}]",
                        a.iter()
                            .map(|x| x
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| x.to_string()))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect();
        Ok((flat, scopes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(extra: Value) -> Map<String, Value> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut m = json!({"iss": "iss", "aud": "aud", "sub": "u1", "exp": now + 300, "iat": now,
                           "scope": "zoom.integration", "portal_account_id": "a1"})
        .as_object()
        .cloned()
        .unwrap();
        for (k, v) in extra.as_object().cloned().unwrap() {
            if v.is_null() {
                m.remove(&k);
            } else {
                m.insert(k, v);
            }
        }
        m
    }

    #[test]
    fn verify_like_api_gateway() {
        let k = JwtKeys::generate().unwrap();
        let scopes = vec!["zoom.integration".to_string()];
        let t = k.mint(&claims(json!({}))).unwrap();
        let (c, s) = k
            .verify(Some(&format!("Bearer {t}")), "iss", "aud", &scopes)
            .unwrap();
        assert_eq!(c["portal_account_id"], "a1");
        assert_eq!(s, scopes);
        let bad = |extra: Value| {
            k.verify(
                Some(&k.mint(&claims(extra)).unwrap()),
                "iss",
                "aud",
                &scopes,
            )
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert_eq!(bad(json!({"exp": now - 1})), Err(AuthFailure::Unauthorized));
        assert_eq!(bad(json!({"aud": "other"})), Err(AuthFailure::Unauthorized));
        assert_eq!(bad(json!({"iss": "other"})), Err(AuthFailure::Unauthorized));
        assert_eq!(bad(json!({"exp": null})), Err(AuthFailure::Unauthorized));
        assert_eq!(
            bad(json!({"nbf": now + 120})),
            Err(AuthFailure::Unauthorized)
        );
        assert_eq!(bad(json!({"scope": "other"})), Err(AuthFailure::Forbidden));
        assert_eq!(
            k.verify(None, "iss", "aud", &scopes),
            Err(AuthFailure::Unauthorized)
        );
        let other = JwtKeys::generate().unwrap();
        let forged = other.mint(&claims(json!({}))).unwrap();
        assert_eq!(
            k.verify(Some(&forged), "iss", "aud", &scopes),
            Err(AuthFailure::Unauthorized)
        );
    }
}
