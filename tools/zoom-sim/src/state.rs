//! The simulator's in-memory world.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};

pub type SimState = Arc<Mutex<Sim>>;

pub fn lock(s: &SimState) -> MutexGuard<'_, Sim> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Zoom-style 22-character id.
pub fn zoom_id() -> String {
    random_token(16)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct App {
    pub client_id: String,
    pub client_secret: String,
    #[serde(default = "default_app_name")]
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
}

fn default_app_name() -> String {
    "Carrier Zoom Phone connector".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub account_id: String,
    pub account_number: i64,
    pub name: String,
    pub owner: User,
}

#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub client_id: String,
    pub account_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub challenge: Option<(String, String)>,
    pub expires_at: i64,
    pub used: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    pub grant_id: String,
    pub client_id: String,
    pub account_id: String,
    pub user_id: String,
    pub scopes: Vec<String>,
    /// The only refresh token that works.
    pub refresh_token: String,
    pub access_token: String,
    pub access_expires_at: i64,
    pub revoked: bool,
    pub revoked_reason: Option<String>,
    /// Successful token-endpoint calls for this grant (issue + refreshes).
    pub token_calls: u64,
    pub refresh_calls: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    #[serde(default)]
    pub method: Option<String>,
    /// Matches a request whose path starts with this.
    pub path: String,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub delay_ms: u64,
    /// Drop the connection without an answer.
    #[serde(default)]
    pub drop: bool,
    /// How many requests it affects; absent = until cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Counters {
    pub authorize_requests: u64,
    pub token_calls: BTreeMap<String, u64>,
    pub token_errors: BTreeMap<String, u64>,
    pub api_calls: BTreeMap<String, u64>,
    pub rate_limited: u64,
}

pub struct Sim {
    pub base_url: String,
    pub apps: HashMap<String, App>,
    pub accounts: BTreeMap<String, Account>,
    pub codes: HashMap<String, CodeGrant>,
    pub grants: HashMap<String, Grant>,
    /// Every refresh token ever issued → its grant (to detect reuse).
    pub refresh_index: HashMap<String, String>,
    /// Every access token issued → (grant, expiry). Older ones stay valid until
    /// they expire, as Zoom's self-contained tokens do, unless the grant ends.
    pub access_index: HashMap<String, (String, i64)>,
    pub faults: Vec<Fault>,
    pub auto_approve: Option<String>,
    pub counters: Counters,
    /// Added to the wall clock: lets tests expire codes and tokens without sleeping.
    pub clock_offset_secs: i64,
    pub webhook: Option<crate::webhooks::WebhookConfig>,
    /// Zoom Phone data per Zoom account.
    pub phone: HashMap<String, crate::phone::PhoneAccount>,
    pub page_tokens: HashMap<String, crate::phone::PageToken>,
    /// Rate plan per account: `business` (default), `pro`, or `off`.
    pub rate_plans: HashMap<String, String>,
    pub rate_windows: HashMap<(String, crate::phone::Label), (i64, u32)>,
    /// SIP trunk names of the carrier's peering (from Zoom's peering setup).
    pub sip_trunks: Vec<String>,
    pub deliveries: Vec<crate::webhooks::Delivery>,
    next_account_number: i64,
}

pub const ACCESS_TTL: i64 = 3599;
pub const CODE_TTL: i64 = 300;

impl Sim {
    pub fn new(base_url: String) -> Self {
        Self {
            base_url,
            apps: HashMap::new(),
            accounts: BTreeMap::new(),
            codes: HashMap::new(),
            grants: HashMap::new(),
            refresh_index: HashMap::new(),
            access_index: HashMap::new(),
            faults: Vec::new(),
            auto_approve: None,
            counters: Counters::default(),
            clock_offset_secs: 0,
            webhook: None,
            phone: HashMap::new(),
            page_tokens: HashMap::new(),
            rate_plans: HashMap::new(),
            rate_windows: HashMap::new(),
            sip_trunks: vec!["carrier-trunk-1".into()],
            deliveries: Vec::new(),
            next_account_number: 10_009_239,
        }
    }

    pub fn now(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp() + self.clock_offset_secs
    }

    pub fn add_account(
        &mut self,
        account_id: Option<String>,
        email: Option<String>,
        name: Option<String>,
    ) -> Account {
        let account_id = account_id.unwrap_or_else(zoom_id);
        self.next_account_number += 1;
        let n = self.next_account_number;
        let acct = Account {
            account_id: account_id.clone(),
            account_number: n,
            name: name.unwrap_or_else(|| format!("Customer {n}")),
            owner: User {
                id: zoom_id(),
                email: email.unwrap_or_else(|| format!("admin{n}@customer.example")),
                first_name: "Ada".into(),
                last_name: "Admin".into(),
            },
        };
        self.accounts.insert(account_id.clone(), acct.clone());
        self.phone
            .insert(account_id, crate::phone::PhoneAccount::seeded());
        acct
    }

    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let i = self.faults.iter().position(|f| {
            path.starts_with(&f.path)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        let f = self.faults[i].clone();
        if let Some(t) = self.faults[i].times.as_mut() {
            *t = t.saturating_sub(1);
            if *t == 0 {
                self.faults.remove(i);
            }
        }
        Some(f)
    }

    /// Issues a new grant; any older grant of the same app and account stops
    /// working (Zoom keeps only the newest authorization).
    pub fn issue_grant(
        &mut self,
        client_id: &str,
        account_id: &str,
        user_id: &str,
        scopes: Vec<String>,
    ) -> Grant {
        for g in self.grants.values_mut() {
            if g.client_id == client_id && g.account_id == account_id && !g.revoked {
                g.revoked = true;
                g.revoked_reason = Some("superseded by a newer authorization".into());
            }
        }
        let g = Grant {
            grant_id: zoom_id(),
            client_id: client_id.into(),
            account_id: account_id.into(),
            user_id: user_id.into(),
            scopes,
            refresh_token: random_token(48),
            access_token: random_token(48),
            access_expires_at: self.now() + ACCESS_TTL,
            revoked: false,
            revoked_reason: None,
            token_calls: 1,
            refresh_calls: 0,
        };
        self.refresh_index
            .insert(g.refresh_token.clone(), g.grant_id.clone());
        self.access_index.insert(
            g.access_token.clone(),
            (g.grant_id.clone(), g.access_expires_at),
        );
        self.grants.insert(g.grant_id.clone(), g.clone());
        g
    }

    pub fn revoke_account(
        &mut self,
        client_id: Option<&str>,
        account_id: &str,
        reason: &str,
    ) -> usize {
        let mut n = 0;
        for g in self.grants.values_mut() {
            if g.account_id == account_id
                && client_id.is_none_or(|c| c == g.client_id)
                && !g.revoked
            {
                g.revoked = true;
                g.revoked_reason = Some(reason.into());
                n += 1;
            }
        }
        n
    }
}
