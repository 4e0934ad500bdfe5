//! Domain identifiers that parse once, at the edge, so the rest of the code
//! never re-checks strings.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {max} characters")]
    TooLong { kind: &'static str, max: usize },
    #[error("{kind} may contain only letters, digits, '-' and '_'")]
    BadCharacter { kind: &'static str },
    #[error("phone number must be E.164: '+' then 8 to 15 digits, the first not 0")]
    NotE164,
}

fn check_token(kind: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > max {
        return Err(IdError::TooLong { kind, max });
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(IdError::BadCharacter { kind });
    }
    Ok(())
}

macro_rules! token_id {
    ($(#[$m:meta])* $name:ident, $kind:literal, $max:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_token($kind, s, $max)?;
                Ok(Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

token_id!(
    /// The carrier Portal's id for a customer account (the tenant).
    PortalAccountId,
    "portal account id",
    64
);
token_id!(
    /// Zoom's account id (`account_id` of `/users/me`, `payload.account_id` of webhooks).
    ZoomAccountId,
    "zoom account id",
    64
);
token_id!(
    /// The Portal user who acted (the JWT `sub`).
    PortalUserId,
    "portal user id",
    128
);

/// A phone number in E.164 form, always stored with its leading `+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct E164Number(String);

impl E164Number {
    /// Strict parse: requires the leading `+`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let digits = s.strip_prefix('+').ok_or(IdError::NotE164)?;
        Self::from_digits(digits)
    }

    /// Lenient parse for Zoom responses, which sometimes omit the `+`.
    pub fn normalize(s: &str) -> Result<Self, IdError> {
        Self::from_digits(s.strip_prefix('+').unwrap_or(s))
    }

    fn from_digits(d: &str) -> Result<Self, IdError> {
        let ok = (8..=15).contains(&d.len())
            && d.bytes().all(|b| b.is_ascii_digit())
            && !d.starts_with('0');
        if ok {
            Ok(Self(format!("+{d}")))
        } else {
            Err(IdError::NotE164)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for E164Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for E164Number {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_account_ids() {
        assert_eq!(
            PortalAccountId::parse("acct-42_x").unwrap().as_str(),
            "acct-42_x"
        );
        assert_eq!(
            PortalAccountId::parse(""),
            Err(IdError::Empty {
                kind: "portal account id"
            })
        );
        assert!(matches!(
            PortalAccountId::parse("a/b"),
            Err(IdError::BadCharacter { .. })
        ));
        assert!(matches!(
            PortalAccountId::parse("a b"),
            Err(IdError::BadCharacter { .. })
        ));
        assert!(matches!(
            PortalAccountId::parse("ACCOUNT#x"),
            Err(IdError::BadCharacter { .. })
        ));
        assert!(matches!(
            PortalAccountId::parse(&"a".repeat(65)),
            Err(IdError::TooLong { max: 64, .. })
        ));
        assert!(PortalAccountId::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn zoom_account_ids_accept_zoom_shapes() {
        for id in ["q6gBJVO5TzexKYTb_I2rpg", "---M1padRvSUtw7YihN7sA"] {
            assert_eq!(ZoomAccountId::parse(id).unwrap().to_string(), id);
        }
        assert!(ZoomAccountId::parse("abc=").is_err());
    }

    #[test]
    fn e164_strict_and_lenient() {
        assert_eq!(
            E164Number::parse("+16175550100").unwrap().as_str(),
            "+16175550100"
        );
        assert_eq!(E164Number::parse("16175550100"), Err(IdError::NotE164));
        assert_eq!(
            E164Number::normalize("14232058798").unwrap().as_str(),
            "+14232058798"
        );
        for bad in [
            "+",
            "+0123456789",
            "+1234567",
            "+1234567890123456",
            "+1617555O100",
            "+1 617 555",
        ] {
            assert_eq!(E164Number::parse(bad), Err(IdError::NotE164), "{bad}");
        }
        assert!(E164Number::parse("+12345678").is_ok());
        assert!(E164Number::parse("+123456789012345").is_ok());
    }

    #[test]
    fn ids_deserialize_through_parse() {
        let ok: PortalAccountId = serde_json::from_str("\"acct1\"").unwrap();
        assert_eq!(ok.as_str(), "acct1");
        assert!(serde_json::from_str::<PortalAccountId>("\"a#b\"").is_err());
        assert!(serde_json::from_str::<E164Number>("\"617\"").is_err());
    }
}
