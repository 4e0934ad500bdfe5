//! The number API (Portal JWT; carrier routes need the carrier-admin scope):
//! inventory, order, upload, operations, list, provisioning options,
//! assignment, port-out, release, and the carrier's port completions.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde::Deserialize;
use shared::AppContext;
use shared::http::{Problem, json};
use shared::ids::{E164Number, PortalAccountId};
use shared::numbers::{self as nums, NumberState, NumbersError};
use shared::{auth, http};

/// Largest upload body (10 000 rows).
const MAX_UPLOAD_BYTES: usize = 2 * 1024 * 1024;

pub async fn handle(ctx: &AppContext, req: Request) -> Result<Response<Body>, Error> {
    Ok(route(ctx, &req)
        .await
        .unwrap_or_else(Problem::into_response))
}

fn route_key(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.route_key.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => b"",
    }
}

fn content_type(req: &Request) -> String {
    req.headers()
        .get(http::http_header_content_type())
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn json_body<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, Problem> {
    http::optional_json_body(req)?
        .ok_or_else(|| Problem::bad_request("body", "a JSON body is required"))
}

fn path_number(req: &Request) -> Result<E164Number, Problem> {
    let raw = req
        .path_parameters_ref()
        .and_then(|p| p.first("number"))
        .unwrap_or_default();
    E164Number::parse(raw)
        .map_err(|e| Problem::bad_request("number", format!("{e} (send + as %2B)")))
}

fn query(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::to_owned)
}

fn limit(req: &Request, default: usize, max: usize) -> Result<usize, Problem> {
    match query(req, "limit") {
        None => Ok(default),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=max).contains(l))
            .ok_or_else(|| Problem::bad_request("limit", format!("1 to {max}"))),
    }
}

fn err(e: NumbersError) -> Problem {
    e.problem()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadJson {
    numbers: Vec<nums::RawUploadRow>,
    #[serde(default)]
    all_or_nothing: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    #[serde(rename = "type")]
    kind: nums::TargetType,
    id: String,
}

fn upload_rows(req: &Request) -> Result<(Vec<nums::RawUploadRow>, bool), Problem> {
    let bytes = body_bytes(req);
    if bytes.len() > MAX_UPLOAD_BYTES {
        let mut p = Problem::new(
            413,
            "Payload too large",
            format!("uploads are at most {MAX_UPLOAD_BYTES} bytes"),
        );
        p.field = Some("body".into());
        return Err(p);
    }
    match content_type(req).as_str() {
        "text/csv" => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| Problem::bad_request("body", "CSV must be UTF-8"))?;
            let rows = nums::parse_csv(text, &["number"]).map_err(err)?;
            let all = query(req, "all_or_nothing").is_some_and(|v| v == "true");
            let rows = rows
                .into_iter()
                .map(|(row, c)| {
                    let porting_in = match c.get("porting_in").map(|v| v.to_ascii_lowercase()) {
                        None => false,
                        Some(v) if v.is_empty() || v == "false" || v == "no" => false,
                        Some(v) if v == "true" || v == "yes" => true,
                        Some(_) => {
                            return Err(Problem::bad_request(
                                &format!("row {row}: porting_in"),
                                "true or false",
                            ));
                        }
                    };
                    Ok(nums::RawUploadRow {
                        number: c.get("number").cloned().unwrap_or_default(),
                        porting_in,
                        billing_ref_id: c.get("billing_ref_id").filter(|v| !v.is_empty()).cloned(),
                        service_info: c.get("service_info").filter(|v| !v.is_empty()).cloned(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((rows, all))
        }
        "application/json" => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let v = UploadJson::deserialize(&mut de)
                .and_then(|v| de.end().map(|_| v))
                .map_err(|e| Problem::bad_request("body", format!("malformed JSON body: {e}")))?;
            Ok((v.numbers, v.all_or_nothing))
        }
        _ => {
            let mut p = Problem::new(
                415,
                "Unsupported media type",
                "send application/json or text/csv",
            );
            p.field = Some("content-type".into());
            Err(p)
        }
    }
}

async fn customer(
    ctx: &AppContext,
    req: &Request,
) -> Result<(auth::Caller, PortalAccountId), Problem> {
    let caller = auth::caller(req, &ctx.config.portal_account_claim)?;
    let account = auth::path_account(req, &caller)?;
    Ok((caller, account))
}

async fn route(ctx: &AppContext, req: &Request) -> Result<Response<Body>, Problem> {
    let rk = route_key(req);
    match rk.as_str() {
        "GET /v1/inventory/numbers" => {
            // Customers and the carrier's operators may both browse the inventory.
            auth::caller(req, &ctx.config.portal_account_claim)
                .map(|_| ())
                .or_else(|_| auth::carrier(req, &ctx.config.carrier_admin_scope).map(|_| ()))?;
            let area = query(req, "area_code")
                .ok_or_else(|| Problem::bad_request("area_code", "give an area code, e.g. 617"))?;
            let page = nums::list_inventory(
                ctx,
                &area,
                limit(req, 50, 500)? as i32,
                query(req, "cursor").as_deref(),
            )
            .await
            .map_err(err)?;
            Ok(json(200, &page))
        }
        "POST /v1/inventory/imports" => {
            auth::carrier(req, &ctx.config.carrier_admin_scope)?;
            if content_type(req) != "text/csv" {
                let mut p = Problem::new(
                    415,
                    "Unsupported media type",
                    "send the inventory as text/csv with a `number` column",
                );
                p.field = Some("content-type".into());
                return Err(p);
            }
            if body_bytes(req).len() > MAX_UPLOAD_BYTES {
                return Err(Problem::new(
                    413,
                    "Payload too large",
                    "at most 2 MiB per import",
                ));
            }
            let text = std::str::from_utf8(body_bytes(req))
                .map_err(|_| Problem::bad_request("body", "CSV must be UTF-8"))?;
            let report = nums::import_inventory(ctx, text).await.map_err(err)?;
            Ok(json(200, &report))
        }
        "POST /v1/accounts/{account_id}/zoom/numbers/orders" => {
            let (caller, account) = customer(ctx, req).await?;
            let body: nums::OrderRequest = json_body(req)?;
            let a = nums::order(ctx, &account, &format!("portal_user:{}", caller.user), body)
                .await
                .map_err(err)?;
            Ok(json(202, &a))
        }
        "POST /v1/accounts/{account_id}/zoom/numbers/uploads" => {
            let (caller, account) = customer(ctx, req).await?;
            let (rows, all) = upload_rows(req)?;
            let a = nums::upload(
                ctx,
                &account,
                &format!("portal_user:{}", caller.user),
                rows,
                all,
            )
            .await
            .map_err(err)?;
            Ok(json(202, &a))
        }
        "GET /v1/accounts/{account_id}/zoom/operations/{operation_id}" => {
            let (_, account) = customer(ctx, req).await?;
            let op_id = req
                .path_parameters_ref()
                .and_then(|p| p.first("operation_id"))
                .unwrap_or_default()
                .to_owned();
            let op = nums::get_operation(ctx, &account, &op_id)
                .await
                .map_err(err)?;
            let page = nums::operation_results(
                ctx,
                &account,
                &op_id,
                limit(req, 100, 1000)? as i32,
                query(req, "cursor").as_deref(),
            )
            .await
            .map_err(err)?;
            let results: Vec<serde_json::Value> = page
                .items
                .iter()
                .map(|r| serde_json::json!({"number": r.number, "result": r.result, "reason": r.reason}))
                .collect();
            Ok(json(
                200,
                &serde_json::json!({
                    "operation_id": op.operation_id, "kind": op.kind, "state": op.state, "total": op.total,
                    "succeeded": op.succeeded, "failed": op.failed, "pending": op.pending,
                    "created_at": op.created_at, "updated_at": op.updated_at,
                    "results": results, "next_cursor": page.next_cursor,
                }),
            ))
        }
        "POST /v1/accounts/{account_id}/zoom/operations/{operation_id}/retry" => {
            let (caller, account) = customer(ctx, req).await?;
            let op_id = req
                .path_parameters_ref()
                .and_then(|p| p.first("operation_id"))
                .unwrap_or_default()
                .to_owned();
            let op = nums::retry_operation(
                ctx,
                &account,
                &op_id,
                &format!("portal_user:{}", caller.user),
            )
            .await
            .map_err(err)?;
            Ok(json(
                202,
                &serde_json::json!({"operation_id": op.operation_id, "state": op.state}),
            ))
        }
        "GET /v1/accounts/{account_id}/zoom/numbers" => {
            let (_, account) = customer(ctx, req).await?;
            let state = query(req, "state")
                .map(|s| {
                    NumberState::parse(&s)
                        .ok_or_else(|| Problem::bad_request("state", "an unknown state"))
                })
                .transpose()?;
            let assigned = query(req, "assigned")
                .map(|s| match s.as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(Problem::bad_request("assigned", "true or false")),
                })
                .transpose()?;
            let page = nums::list_numbers(
                ctx,
                &account,
                state,
                assigned,
                limit(req, 50, 500)?,
                query(req, "cursor").as_deref(),
            )
            .await
            .map_err(err)?;
            Ok(json(200, &page))
        }
        "GET /v1/accounts/{account_id}/zoom/provisioning-options" => {
            let (_, account) = customer(ctx, req).await?;
            Ok(json(
                200,
                &nums::provisioning_options(ctx, &account)
                    .await
                    .map_err(err)?,
            ))
        }
        "PUT /v1/accounts/{account_id}/zoom/numbers/{number}/assignment" => {
            let (caller, account) = customer(ctx, req).await?;
            let num = path_number(req)?;
            let b: AssignBody = json_body(req)?;
            let v = nums::assign(
                ctx,
                &account,
                &num,
                b.kind,
                &b.id,
                &format!("portal_user:{}", caller.user),
            )
            .await
            .map_err(err)?;
            Ok(json(200, &v))
        }
        "DELETE /v1/accounts/{account_id}/zoom/numbers/{number}/assignment" => {
            let (caller, account) = customer(ctx, req).await?;
            let num = path_number(req)?;
            let v = nums::unassign(ctx, &account, &num, &format!("portal_user:{}", caller.user))
                .await
                .map_err(err)?;
            Ok(json(200, &v))
        }
        "PUT /v1/accounts/{account_id}/zoom/numbers/{number}/port-out" => {
            let (caller, account) = customer(ctx, req).await?;
            let num = path_number(req)?;
            let b: nums::PortOutRequest = json_body(req)?;
            let item = nums::schedule_port_out(
                ctx,
                &account,
                &num,
                b,
                &format!("portal_user:{}", caller.user),
            )
            .await
            .map_err(err)?;
            Ok(json(
                200,
                &serde_json::json!({"number": item.number, "state": item.state, "port_out_date": item.port_out_date, "unassign_on_port_day": item.unassign_on_port_day}),
            ))
        }
        "DELETE /v1/accounts/{account_id}/zoom/numbers/{number}/port-out" => {
            let (caller, account) = customer(ctx, req).await?;
            let num = path_number(req)?;
            let item =
                nums::cancel_port_out(ctx, &account, &num, &format!("portal_user:{}", caller.user))
                    .await
                    .map_err(err)?;
            Ok(json(
                200,
                &serde_json::json!({"number": item.number, "state": item.state}),
            ))
        }
        "POST /v1/accounts/{account_id}/zoom/numbers/{number}/release" => {
            let (caller, account) = customer(ctx, req).await?;
            let num = path_number(req)?;
            let a = nums::release(ctx, &account, &num, &format!("portal_user:{}", caller.user))
                .await
                .map_err(err)?;
            Ok(json(202, &a))
        }
        "POST /v1/accounts/{account_id}/zoom/numbers/{number}/port-in-complete" => {
            let user = auth::carrier(req, &ctx.config.carrier_admin_scope)?;
            let account = auth::path_account_unchecked(req)?;
            let num = path_number(req)?;
            let item = nums::complete_port_in(ctx, &account, &num, &format!("carrier:{user}"))
                .await
                .map_err(err)?;
            Ok(json(
                200,
                &serde_json::json!({"number": item.number, "state": item.state, "zoom_active": item.zoom_active}),
            ))
        }
        "POST /v1/accounts/{account_id}/zoom/numbers/{number}/port-out-complete" => {
            let user = auth::carrier(req, &ctx.config.carrier_admin_scope)?;
            let account = auth::path_account_unchecked(req)?;
            let num = path_number(req)?;
            let item = nums::complete_port_out(ctx, &account, &num, &format!("carrier:{user}"))
                .await
                .map_err(err)?;
            Ok(json(
                200,
                &serde_json::json!({"number": item.number, "state": item.state}),
            ))
        }
        _ => Err(Problem::not_found("no such route")),
    }
}
