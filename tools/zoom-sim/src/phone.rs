//! Zoom Phone and Number Management endpoints (reference §3): peering numbers
//! (Provider Exchange), `GET /phone/numbers`, users, call queues, auto
//! receptionists, sites, assign/unassign — with Zoom's page sizes, 15-minute
//! page tokens, status codes and error bodies, and per-account rate limits by
//! label (§4) answered with 429s.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::oauth::bearer_grant;
use crate::state::{Sim, SimState, lock, random_token, zoom_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    Light,
    Medium,
    Heavy,
}

impl Label {
    fn name(self) -> &'static str {
        match self {
            Label::Light => "Light",
            Label::Medium => "Medium",
            Label::Heavy => "Heavy",
        }
    }
}

/// Per-second limits by plan (§4.2, Zoom Phone API).
pub fn limit(plan: &str, label: Label) -> Option<u32> {
    match (plan, label) {
        ("off", _) => None,
        ("pro", Label::Light) => Some(20),
        ("pro", Label::Medium) => Some(10),
        ("pro", Label::Heavy) => Some(5),
        (_, Label::Light) => Some(40),
        (_, Label::Medium) => Some(20),
        (_, Label::Heavy) => Some(10),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PeeringNumber {
    pub id: String,
    pub phone_number: String,
    pub status: bool,
    pub sip_trunk_name: String,
    pub billing_ref_id: Option<String>,
    pub service_info: Option<String>,
    pub number_type: String,
    pub allocated_product: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Extension {
    pub id: String,
    pub name: String,
    pub extension_number: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Assignee {
    pub id: String,
    pub name: String,
    pub extension_number: i64,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Default)]
pub struct PhoneAccount {
    pub numbers: BTreeMap<String, PeeringNumber>,
    pub assignees: HashMap<String, Assignee>,
    pub users: Vec<Extension>,
    pub call_queues: Vec<Extension>,
    pub auto_receptionists: Vec<Extension>,
    pub sites: Vec<Extension>,
}

impl PhoneAccount {
    pub fn seeded() -> Self {
        let ext = |name: &str, n: i64| Extension {
            id: zoom_id(),
            name: name.to_owned(),
            extension_number: n,
        };
        Self {
            users: vec![
                ext("Ada Admin", 1001),
                ext("Grace Hopper", 1002),
                ext("Alan Turing", 1003),
            ],
            call_queues: vec![ext("Sales Queue", 2001), ext("Support Queue", 2002)],
            auto_receptionists: vec![
                ext("Main Auto Receptionist", 3001),
                ext("After Hours", 3002),
            ],
            sites: vec![ext("Main Site", 0)],
            ..Default::default()
        }
    }
}

/// A stored page position: what was listed, where to go on, when issued.
#[derive(Debug, Clone)]
pub struct PageToken {
    pub key: String,
    pub offset: usize,
    pub issued_at: i64,
}

pub const PAGE_TOKEN_TTL: i64 = 15 * 60;

fn err(status: StatusCode, code: i64, message: &str) -> Response {
    let mut r = (status, Json(json!({"code": code, "message": message}))).into_response();
    if let Ok(v) =
        axum::http::HeaderValue::from_str(&format!("v=2.0;clid=us06;rid=SIM_{}", random_token(6)))
    {
        r.headers_mut().insert("x-zm-trackingid", v);
    }
    r
}

/// Bearer, scope, rate limit: what every Phone API call goes through.
/// Returns the Zoom account id.
fn gate(
    sim: &mut Sim,
    headers: &HeaderMap,
    route: &str,
    label: Label,
    scopes: &[&str],
) -> Result<String, Response> {
    *sim.counters.api_calls.entry(route.to_owned()).or_default() += 1;
    let g = bearer_grant(sim, headers)?;
    if !g.scopes.iter().any(|s| scopes.contains(&s.as_str())) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            4711,
            &format!(
                "Invalid access token, does not contain scopes:[{}]",
                scopes.last().copied().unwrap_or_default()
            ),
        ));
    }
    let account = g.account_id.clone();
    let plan = sim
        .rate_plans
        .get(&account)
        .cloned()
        .unwrap_or_else(|| "business".into());
    if let Some(max) = limit(&plan, label) {
        let second = time::OffsetDateTime::now_utc().unix_timestamp();
        let slot = sim
            .rate_windows
            .entry((account.clone(), label))
            .or_insert((second, 0));
        if slot.0 != second {
            *slot = (second, 0);
        }
        if slot.1 >= max {
            sim.counters.rate_limited += 1;
            let mut r = err(
                StatusCode::TOO_MANY_REQUESTS,
                429,
                "You have reached the maximum per-second rate limit for this API. Try again later.",
            );
            let h = r.headers_mut();
            for (k, v) in [
                ("x-ratelimit-category", label.name().to_owned()),
                ("x-ratelimit-type", "QPS".to_owned()),
                ("x-ratelimit-limit", max.to_string()),
                ("x-ratelimit-remaining", "0".to_owned()),
                ("retry-after", "1".to_owned()),
            ] {
                if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            }
            return Err(r);
        }
        slot.1 += 1;
    }
    sim.phone
        .entry(account.clone())
        .or_insert_with(PhoneAccount::seeded);
    Ok(account)
}

const PHONE_READ: &[&str] = &["phone:read:admin", "phone:read:list_numbers:admin"];
const PHONE_WRITE: &[&str] = &["phone:write:admin", "phone:write:user_number:admin"];
const NM_WRITE: &[&str] = &[
    "phone_peering:write:admin",
    "number_management_numbers:write:admin",
    "number_management:write:peering_number:admin",
];
const NM_READ: &[&str] = &[
    "phone_peering:read:admin",
    "number_management_numbers:read:admin",
    "number_management:read:list_peering_numbers:admin",
];

fn e164(s: &str) -> Option<String> {
    let d = s.strip_prefix('+').unwrap_or(s);
    ((8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0'))
        .then(|| format!("+{d}"))
}

#[derive(Deserialize)]
pub struct PageQuery {
    page_size: Option<usize>,
    next_page_token: Option<String>,
    phone_number: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// One page of `items` under `key`; errors on a bad or expired token.
fn paginate<T: Clone>(
    sim: &mut Sim,
    key: &str,
    items: &[T],
    q: &PageQuery,
    max: usize,
) -> Result<(Vec<T>, String), Response> {
    let size = q.page_size.unwrap_or(30).clamp(1, max);
    let offset = match q.next_page_token.as_deref().filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => {
            let now = sim.now();
            match sim.page_tokens.get(t) {
                Some(p) if p.key == key && now - p.issued_at < PAGE_TOKEN_TTL => p.offset,
                _ => {
                    return Err(err(
                        StatusCode::BAD_REQUEST,
                        300,
                        "The next page token is invalid or expired.",
                    ));
                }
            }
        }
    };
    let page: Vec<T> = items.iter().skip(offset).take(size).cloned().collect();
    let next = offset + page.len();
    let token = if next < items.len() {
        let t = random_token(24);
        let now = sim.now();
        sim.page_tokens.insert(
            t.clone(),
            PageToken {
                key: key.to_owned(),
                offset: next,
                issued_at: now,
            },
        );
        t
    } else {
        String::new()
    };
    Ok((page, token))
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

// ---- Number Management: peering numbers (§3.16) ----

/// 1–200 numbers a call, with Zoom's codes otherwise.
fn batch_size_error(len: usize) -> Option<Response> {
    match len {
        0 => Some(err(
            StatusCode::BAD_REQUEST,
            1002,
            "Request data cannot be empty",
        )),
        n if n > 200 => Some(err(
            StatusCode::BAD_REQUEST,
            1003,
            "Too many numbers, should less than 200",
        )),
        _ => None,
    }
}

#[derive(Deserialize)]
pub struct PeeringBody {
    #[serde(default)]
    allocated_product: Option<String>,
    #[serde(default)]
    phone_numbers: Vec<Value>,
}

fn failures(list: Vec<(String, &str)>) -> Response {
    let errors: Vec<Value> = list
        .into_iter()
        .map(|(n, r)| json!({"phoneNumber": n, "reason": r}))
        .collect();
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"code": 1000, "message": "Some data failed", "errors": errors})),
    )
        .into_response()
}

pub async fn peering_add(
    State(s): State<SimState>,
    headers: HeaderMap,
    Json(b): Json<PeeringBody>,
) -> Response {
    let mut sim = lock(&s);
    let account = tri!(gate(
        &mut sim,
        &headers,
        "POST /number_management/peering_numbers",
        Label::Light,
        NM_WRITE
    ));
    if let Some(r) = batch_size_error(b.phone_numbers.len()) {
        return r;
    }
    let trunks = sim.sip_trunks.clone();
    let taken: HashMap<String, String> = sim
        .phone
        .iter()
        .flat_map(|(a, p)| p.numbers.keys().map(move |n| (n.clone(), a.clone())))
        .collect();
    let mut failed = Vec::new();
    let mut added = Vec::new();
    for item in &b.phone_numbers {
        let raw = item["phone_number"].as_str().unwrap_or_default();
        let Some(n) = e164(raw) else {
            failed.push((raw.to_owned(), "Invalid number"));
            continue;
        };
        let trunk = item["sip_trunk_name"].as_str().unwrap_or_default();
        if !trunks.iter().any(|t| t == trunk) {
            failed.push((n, "Invalid Sip Trunk"));
            continue;
        }
        let Some(status) = item["status"].as_bool() else {
            failed.push((n, "Invalid status"));
            continue;
        };
        match taken.get(&n) {
            Some(a) if *a == account => {
                failed.push((n, "Phone number already exists"));
                continue;
            }
            Some(_) => {
                failed.push((n, "Phone number is used by another account"));
                continue;
            }
            None => {}
        }
        if added.iter().any(|p: &PeeringNumber| p.phone_number == n) {
            failed.push((n, "Duplicate phone number"));
            continue;
        }
        added.push(PeeringNumber {
            id: zoom_id(),
            phone_number: n,
            status,
            sip_trunk_name: trunk.to_owned(),
            billing_ref_id: item["billing_ref_id"].as_str().map(str::to_owned),
            service_info: item["service_info"].as_str().map(str::to_owned),
            number_type: item["number_type"].as_str().unwrap_or("Toll").to_owned(),
            allocated_product: b
                .allocated_product
                .clone()
                .unwrap_or_else(|| "ZOOM_PHONE".into()),
        });
    }
    let acct = sim
        .phone
        .entry(account)
        .or_insert_with(PhoneAccount::seeded);
    for p in added {
        acct.numbers.insert(p.phone_number.clone(), p);
    }
    if failed.is_empty() {
        StatusCode::CREATED.into_response()
    } else {
        failures(failed)
    }
}

pub async fn peering_update(
    State(s): State<SimState>,
    headers: HeaderMap,
    Json(b): Json<PeeringBody>,
) -> Response {
    let mut sim = lock(&s);
    let account = tri!(gate(
        &mut sim,
        &headers,
        "PATCH /number_management/peering_numbers",
        Label::Light,
        NM_WRITE
    ));
    if let Some(r) = batch_size_error(b.phone_numbers.len()) {
        return r;
    }
    let acct = sim
        .phone
        .entry(account)
        .or_insert_with(PhoneAccount::seeded);
    let mut failed = Vec::new();
    for item in &b.phone_numbers {
        let raw = item["phone_number"].as_str().unwrap_or_default();
        let Some(p) = e164(raw).and_then(|n| acct.numbers.get_mut(&n)) else {
            failed.push((raw.to_owned(), "Phone number does not exist"));
            continue;
        };
        if let Some(st) = item["status"].as_bool() {
            p.status = st;
        }
        if let Some(v) = item["billing_ref_id"].as_str() {
            p.billing_ref_id = Some(v.to_owned());
        }
        if let Some(v) = item["service_info"].as_str() {
            p.service_info = Some(v.to_owned());
        }
    }
    if failed.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        failures(failed)
    }
}

/// `phone_numbers` as a comma list, repeated keys, or `phone_numbers[]`.
fn query_list(raw: &str, name: &str) -> Vec<String> {
    url::form_urlencoded::parse(raw.as_bytes())
        .filter(|(k, _)| k == name || *k == format!("{name}[]"))
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|x| x.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|x| !x.is_empty())
        .collect()
}

pub async fn peering_delete(
    State(s): State<SimState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let mut sim = lock(&s);
    let account = tri!(gate(
        &mut sim,
        &headers,
        "DELETE /number_management/peering_numbers",
        Label::Light,
        NM_WRITE
    ));
    let list = query_list(uri.query().unwrap_or_default(), "phone_numbers");
    if let Some(r) = batch_size_error(list.len()) {
        return r;
    }
    let acct = sim
        .phone
        .entry(account)
        .or_insert_with(PhoneAccount::seeded);
    let mut failed = Vec::new();
    for raw in list {
        match e164(&raw) {
            Some(n) if acct.assignees.contains_key(&n) => {
                failed.push((n, "Phone number is assigned"))
            }
            Some(n) if acct.numbers.remove(&n).is_some() => {}
            _ => failed.push((raw, "Phone number does not exist")),
        }
    }
    if failed.is_empty() {
        StatusCode::OK.into_response()
    } else {
        failures(failed)
    }
}

pub async fn peering_list(
    State(s): State<SimState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let mut sim = lock(&s);
    let account = tri!(gate(
        &mut sim,
        &headers,
        "GET /number_management/peering_numbers",
        Label::Light,
        NM_READ
    ));
    let acct = &sim.phone[&account];
    let filter = q.phone_number.as_deref().and_then(e164);
    let all: Vec<Value> = acct
        .numbers
        .values()
        .filter(|p| filter.as_ref().is_none_or(|f| *f == p.phone_number))
        .map(|p| {
            json!({"phone_number": p.phone_number, "assigned": acct.assignees.contains_key(&p.phone_number),
                   "allocated_product": p.allocated_product, "status": p.status, "sip_trunk_name": p.sip_trunk_name,
                   "billing_ref_id": p.billing_ref_id, "service_info": p.service_info})
        })
        .collect();
    let total = all.len();
    let (page, next) = tri!(paginate(
        &mut sim,
        &format!("peering:{account}"),
        &all,
        &q,
        300
    ));
    Json(json!({"numbers": page, "next_page_token": next, "total_records": total})).into_response()
}

// ---- Phone API (§3.2–3.12) ----

pub async fn phone_numbers(
    State(s): State<SimState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let mut sim = lock(&s);
    let account = tri!(gate(
        &mut sim,
        &headers,
        "GET /phone/numbers",
        Label::Medium,
        PHONE_READ
    ));
    let acct = &sim.phone[&account];
    let site = acct.sites.first().cloned();
    let filter = q.phone_number.as_deref().and_then(e164);
    let kind = q.kind.clone().unwrap_or_else(|| "all".into());
    let all: Vec<Value> = acct
        .numbers
        .values()
        .filter(|p| filter.as_ref().is_none_or(|f| *f == p.phone_number))
        .filter(|p| match kind.as_str() {
            "assigned" => acct.assignees.contains_key(&p.phone_number),
            "unassigned" => !acct.assignees.contains_key(&p.phone_number),
            _ => true,
        })
        .map(|p| {
            let mut v = json!({"id": p.id, "number": p.phone_number, "source": "external",
                "status": if p.status { "available" } else { "pending" },
                "number_type": if p.number_type == "TollFree" { "tollfree" } else { "toll" },
                "capability": ["incoming", "outgoing"], "location": "United States",
                "site": site.as_ref().map(|s| json!({"id": s.id, "name": s.name})),
                "carrier": {"code": 3457, "name": "Carrier"}});
            if let Some(a) = acct.assignees.get(&p.phone_number) {
                v["assignee"] = json!(a);
            }
            v
        })
        .collect();
    let total = all.len();
    let (page, next) = tri!(paginate(
        &mut sim,
        &format!("numbers:{account}:{kind}"),
        &all,
        &q,
        100
    ));
    Json(json!({"phone_numbers": page, "next_page_token": next, "page_size": page.len(), "total_records": total}))
        .into_response()
}

fn list_of(kind: &str, acct: &PhoneAccount) -> Vec<Value> {
    let item = |e: &Extension, extra: Value| {
        let mut v = json!({"id": e.id, "name": e.name, "extension_number": e.extension_number});
        if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(x.clone());
        }
        v
    };
    let numbers_of = |kind: &str, id: &str| -> Vec<Value> {
        acct.assignees
            .iter()
            .filter(|(_, a)| a.kind == kind && a.id == id)
            .map(|(n, _)| json!({"id": acct.numbers.get(n).map(|p| p.id.clone()), "number": n}))
            .collect()
    };
    match kind {
        "users" => acct.users.iter().map(|u| item(u, json!({"email": format!("{}@customer.example", u.name.to_lowercase().replace(' ', ".")), "status": "activate", "phone_numbers": numbers_of("user", &u.id)}))).collect(),
        "call_queues" => acct.call_queues.iter().map(|c| item(c, json!({"status": "active", "phone_numbers": numbers_of("callQueue", &c.id)}))).collect(),
        "auto_receptionists" => acct.auto_receptionists.iter().map(|a| item(a, json!({"phone_numbers": numbers_of("autoReceptionist", &a.id)}))).collect(),
        _ => acct.sites.iter().map(|s| json!({"id": s.id, "name": s.name, "site_code": 1, "level": "main"})).collect(),
    }
}

pub async fn list_extensions(
    State(s): State<SimState>,
    headers: HeaderMap,
    Path(kind): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let (max, key) = match kind.as_str() {
        "users" | "call_queues" | "auto_receptionists" => (100, kind.clone()),
        "sites" => (300, kind.clone()),
        _ => return err(StatusCode::NOT_FOUND, 404, "Not found"),
    };
    let mut sim = lock(&s);
    let account = tri!(gate(
        &mut sim,
        &headers,
        &format!("GET /phone/{kind}"),
        Label::Medium,
        PHONE_READ
    ));
    let all = list_of(&kind, &sim.phone[&account]);
    let total = all.len();
    let (page, next) = tri!(paginate(
        &mut sim,
        &format!("{key}:{account}"),
        &all,
        &q,
        max
    ));
    let mut body =
        json!({"next_page_token": next, "page_size": page.len(), "total_records": total});
    body[kind.as_str()] = json!(page);
    Json(body).into_response()
}

fn find<'a>(acct: &'a PhoneAccount, kind: &str, id: &str) -> Option<&'a Extension> {
    let list = match kind {
        "users" => &acct.users,
        "call_queues" => &acct.call_queues,
        _ => &acct.auto_receptionists,
    };
    list.iter().find(|e| e.id == id)
}

fn not_found(kind: &str, id: &str) -> Response {
    match kind {
        "users" => err(
            StatusCode::NOT_FOUND,
            1001,
            &format!("This user does not exist: {id}."),
        ),
        "call_queues" => err(
            StatusCode::BAD_REQUEST,
            400,
            &format!("Call Queue does not exist: {id}."),
        ),
        _ => err(
            StatusCode::NOT_FOUND,
            404,
            &format!("AutoReceptionist does not exist, AutoReceptionistId: {id}."),
        ),
    }
}

pub async fn get_extension(
    State(s): State<SimState>,
    headers: HeaderMap,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
    if !matches!(
        kind.as_str(),
        "users" | "call_queues" | "auto_receptionists"
    ) {
        return err(StatusCode::NOT_FOUND, 404, "Not found");
    }
    let label = if kind == "auto_receptionists" {
        Label::Medium
    } else {
        Label::Light
    };
    let mut sim = lock(&s);
    let account = tri!(gate(
        &mut sim,
        &headers,
        &format!("GET /phone/{kind}/{{id}}"),
        label,
        PHONE_READ
    ));
    let acct = &sim.phone[&account];
    match find(acct, &kind, &id) {
        Some(e) => {
            Json(json!({"id": e.id, "name": e.name, "extension_number": e.extension_number}))
                .into_response()
        }
        None => not_found(&kind, &id),
    }
}

#[derive(Deserialize)]
pub struct AssignBody {
    #[serde(default)]
    phone_numbers: Vec<Value>,
}

pub async fn assign(
    State(s): State<SimState>,
    headers: HeaderMap,
    Path((kind, id)): Path<(String, String)>,
    Json(b): Json<AssignBody>,
) -> Response {
    let (zoom_kind, max, ok_status) = match kind.as_str() {
        "users" => ("user", 10, StatusCode::CREATED),
        "call_queues" => ("callQueue", 5, StatusCode::CREATED),
        "auto_receptionists" => ("autoReceptionist", 50, StatusCode::NO_CONTENT),
        _ => return err(StatusCode::NOT_FOUND, 404, "Not found"),
    };
    let mut sim = lock(&s);
    let account = tri!(gate(
        &mut sim,
        &headers,
        &format!("POST /phone/{kind}/{{id}}/phone_numbers"),
        Label::Light,
        PHONE_WRITE
    ));
    let acct = sim
        .phone
        .entry(account)
        .or_insert_with(PhoneAccount::seeded);
    let Some(target) = find(acct, &kind, &id).cloned() else {
        return not_found(&kind, &id);
    };
    if b.phone_numbers.is_empty() {
        return err(
            StatusCode::BAD_REQUEST,
            400,
            "Need to specify at least one phone number",
        );
    }
    if b.phone_numbers.len() > max {
        return err(
            StatusCode::BAD_REQUEST,
            300,
            &format!("Only a maximum of {max} numbers can be assigned at a time."),
        );
    }
    let mut resolved = Vec::new();
    for item in &b.phone_numbers {
        let n = item["number"].as_str().and_then(e164).or_else(|| {
            item["id"].as_str().and_then(|i| {
                acct.numbers
                    .values()
                    .find(|p| p.id == i)
                    .map(|p| p.phone_number.clone())
            })
        });
        let Some(n) = n.filter(|n| acct.numbers.contains_key(n)) else {
            return err(StatusCode::BAD_REQUEST, 400, "Phone number does not exist.");
        };
        if acct.assignees.contains_key(&n) {
            return err(
                StatusCode::BAD_REQUEST,
                400,
                &format!("phoneNumber is used, phonenumberId:{}", acct.numbers[&n].id),
            );
        }
        resolved.push(n);
    }
    let mut out = Vec::new();
    for n in resolved {
        acct.assignees.insert(
            n.clone(),
            Assignee {
                id: target.id.clone(),
                name: target.name.clone(),
                extension_number: target.extension_number,
                kind: zoom_kind.into(),
            },
        );
        out.push(json!({"id": acct.numbers[&n].id, "number": n}));
    }
    if ok_status == StatusCode::NO_CONTENT {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (ok_status, Json(json!({"phone_numbers": out}))).into_response()
    }
}

pub async fn unassign(
    State(s): State<SimState>,
    headers: HeaderMap,
    Path((kind, id, number)): Path<(String, String, String)>,
) -> Response {
    let zoom_kind = match kind.as_str() {
        "users" => "user",
        "call_queues" => "callQueue",
        "auto_receptionists" => "autoReceptionist",
        _ => return err(StatusCode::NOT_FOUND, 404, "Not found"),
    };
    let mut sim = lock(&s);
    let account = tri!(gate(
        &mut sim,
        &headers,
        &format!("DELETE /phone/{kind}/{{id}}/phone_numbers/{{n}}"),
        Label::Light,
        PHONE_WRITE
    ));
    let acct = sim
        .phone
        .entry(account)
        .or_insert_with(PhoneAccount::seeded);
    if find(acct, &kind, &id).is_none() {
        return not_found(&kind, &id);
    }
    // Users and auto receptionists take the number or its id; call queues only the id.
    let by_id = acct
        .numbers
        .values()
        .find(|p| p.id == number)
        .map(|p| p.phone_number.clone());
    let n = if kind == "call_queues" {
        by_id
    } else {
        by_id.or_else(|| e164(&number))
    };
    let belongs = n
        .as_ref()
        .and_then(|n| acct.assignees.get(n))
        .is_some_and(|a| a.kind == zoom_kind && a.id == id);
    match (n, belongs) {
        (Some(n), true) => {
            acct.assignees.remove(&n);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => match kind.as_str() {
            "call_queues" => err(
                StatusCode::NOT_FOUND,
                404,
                "Phone number not belong to call queue.",
            ),
            "auto_receptionists" => err(
                StatusCode::BAD_REQUEST,
                400,
                "Phone number does not belong to auto receptionist.",
            ),
            _ => err(
                StatusCode::NOT_FOUND,
                400,
                "Invalid query parameter \"phone_number\".",
            ),
        },
    }
}
