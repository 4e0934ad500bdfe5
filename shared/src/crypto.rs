//! Token encryption at rest: AES-256-GCM, a fresh 96-bit nonce per seal, the
//! Portal account id as associated data (a ciphertext moved to another
//! account's item does not open), and the key id stored with the ciphertext
//! so keys can rotate.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::ExposeSecret;

use crate::secrets::AppSecret;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("encryption key {0:?} is not 32 bytes of base64")]
    BadKey(String),
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("no encryption key with id {0:?}")]
    UnknownKey(String),
    #[error("ciphertext does not authenticate")]
    Authentication,
}

const VERSION: &str = "v1";

pub struct TokenCipher {
    active: String,
    keys: BTreeMap<String, Aes256Gcm>,
}

impl TokenCipher {
    pub fn from_secret(secret: &AppSecret) -> Result<Self, CryptoError> {
        let mut keys = BTreeMap::new();
        for (kid, b64) in &secret.token_encryption_keys {
            let valid_kid = !kid.is_empty()
                && kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            let raw = STANDARD
                .decode(b64.expose_secret().trim())
                .map_err(|_| CryptoError::BadKey(kid.clone()))?;
            if !valid_kid || raw.len() != 32 {
                return Err(CryptoError::BadKey(kid.clone()));
            }
            let cipher =
                Aes256Gcm::new_from_slice(&raw).map_err(|_| CryptoError::BadKey(kid.clone()))?;
            keys.insert(kid.clone(), cipher);
        }
        if !keys.contains_key(&secret.active_token_key_id) {
            return Err(CryptoError::UnknownKey(secret.active_token_key_id.clone()));
        }
        Ok(Self {
            active: secret.active_token_key_id.clone(),
            keys,
        })
    }

    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Seals `plaintext` as `v1.<kid>.<nonce>.<ciphertext>` (base64url parts).
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<String, CryptoError> {
        let cipher = self
            .keys
            .get(&self.active)
            .ok_or_else(|| CryptoError::UnknownKey(self.active.clone()))?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Authentication)?;
        Ok(format!(
            "{VERSION}.{}.{}.{}",
            self.active,
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ct)
        ))
    }

    pub fn open(&self, aad: &str, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let mut parts = sealed.split('.');
        let (Some(VERSION), Some(kid), Some(nonce), Some(ct), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CryptoError::Malformed);
        };
        let cipher = self
            .keys
            .get(kid)
            .ok_or_else(|| CryptoError::UnknownKey(kid.to_owned()))?;
        let nonce = URL_SAFE_NO_PAD
            .decode(nonce)
            .map_err(|_| CryptoError::Malformed)?;
        let ct = URL_SAFE_NO_PAD
            .decode(ct)
            .map_err(|_| CryptoError::Malformed)?;
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| CryptoError::Malformed)?;
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Authentication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(keys: &[(&str, [u8; 32])], active: &str) -> AppSecret {
        let keys_json: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .map(|(k, v)| (k.to_string(), STANDARD.encode(v).into()))
            .collect();
        let j = serde_json::json!({
            "zoom_client_id": "c", "zoom_client_secret": "s",
            "token_encryption_keys": keys_json, "active_token_key_id": active,
        });
        AppSecret::from_json(&j.to_string()).unwrap()
    }

    #[test]
    fn round_trip_and_no_plaintext_in_output() {
        let c = TokenCipher::from_secret(&secret(&[("k1", [7; 32])], "k1")).unwrap();
        let sealed = c.seal("acct-1", b"ACCESS-TOKEN-CANARY").unwrap();
        assert!(sealed.starts_with("v1.k1."));
        assert!(!sealed.contains("CANARY"));
        assert_eq!(c.open("acct-1", &sealed).unwrap(), b"ACCESS-TOKEN-CANARY");
        // Fresh nonce each time.
        assert_ne!(sealed, c.seal("acct-1", b"ACCESS-TOKEN-CANARY").unwrap());
    }

    #[test]
    fn other_account_or_tampering_fails() {
        let c = TokenCipher::from_secret(&secret(&[("k1", [7; 32])], "k1")).unwrap();
        let sealed = c.seal("acct-1", b"tok").unwrap();
        assert_eq!(c.open("acct-2", &sealed), Err(CryptoError::Authentication));
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(c.open("acct-1", &tampered).is_err());
        assert_eq!(c.open("acct-1", "v2.k1.a.b"), Err(CryptoError::Malformed));
        assert_eq!(c.open("acct-1", "garbage"), Err(CryptoError::Malformed));
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable() {
        let old = TokenCipher::from_secret(&secret(&[("k1", [7; 32])], "k1")).unwrap();
        let sealed = old.seal("a", b"tok").unwrap();
        let new =
            TokenCipher::from_secret(&secret(&[("k1", [7; 32]), ("k2", [9; 32])], "k2")).unwrap();
        assert_eq!(new.open("a", &sealed).unwrap(), b"tok");
        assert!(new.seal("a", b"x").unwrap().starts_with("v1.k2."));
        let retired = TokenCipher::from_secret(&secret(&[("k2", [9; 32])], "k2")).unwrap();
        assert_eq!(
            retired.open("a", &sealed),
            Err(CryptoError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn short_keys_are_refused() {
        let mut s = secret(&[("k1", [7; 32])], "k1");
        s.token_encryption_keys
            .insert("k1".into(), STANDARD.encode([1u8; 16]).into());
        assert!(matches!(
            TokenCipher::from_secret(&s),
            Err(CryptoError::BadKey(_))
        ));
    }
}
