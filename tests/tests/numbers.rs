//! The number lifecycle over HTTP: local gateway → numbers / removal-check
//! functions → DynamoDB Local, moto SQS (the gateway plays the event source
//! mapping to the worker) → zoom-sim's Provider Exchange and Phone APIs.

use std::collections::HashSet;
use std::time::Duration;

use e2e::Stack;
use reqwest::Method;
use serde_json::{Value, json};

fn range(prefix: &str, from: u32, n: u32) -> Vec<String> {
    (from..from + n)
        .map(|i| format!("{prefix}{i:04}"))
        .collect()
}

fn enc(n: &str) -> String {
    n.replace('+', "%2B")
}

/// A verified account with a Zoom account; returns (zoom id, token).
async fn verified(s: &Stack, account: &str) -> anyhow::Result<(String, String)> {
    let zoom = s.zoom_account().await?;
    s.verify(account, &zoom).await?;
    Ok((zoom, s.token(account).await?))
}

#[tokio::test]
async fn order_from_inventory_lands_in_zoom() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let (zoom, t) = verified(&s, "acct-1").await?;
    let inv = range("+1617555", 100, 30);
    let r = s.import_inventory(&inv).await?;
    assert_eq!(r["added"], 30);
    let (st, page) = s
        .api(
            Method::GET,
            "/v1/inventory/numbers?area_code=617&limit=10",
            &t,
            None,
        )
        .await?;
    assert_eq!(st, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 10);
    assert!(page["next_cursor"].is_string());

    let (st, acc) = s
        .api(
            Method::POST,
            "/v1/accounts/acct-1/zoom/numbers/orders",
            &t,
            Some(json!({"area_code": "617", "quantity": 5})),
        )
        .await?;
    assert_eq!(st, 202, "{acc}");
    let op = s
        .wait_operation(
            "acct-1",
            &t,
            acc["operation_id"].as_str().unwrap(),
            Duration::from_secs(30),
        )
        .await?;
    assert_eq!(
        (
            op["state"].as_str(),
            op["succeeded"].as_u64(),
            op["failed"].as_u64()
        ),
        (Some("succeeded"), Some(5), Some(0)),
        "{op}"
    );

    let in_zoom: HashSet<String> = s
        .sim_numbers(&zoom)
        .await?
        .iter()
        .map(|n| n["number"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(in_zoom.len(), 5);
    let (_, list) = s
        .api(Method::GET, "/v1/accounts/acct-1/zoom/numbers", &t, None)
        .await?;
    let ours: HashSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["number"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ours, in_zoom);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "in_zoom"
                && n["assigned"] == false
                && n["status"] == "available")
    );
    // Ordered numbers are no longer available.
    let (_, page) = s
        .api(
            Method::GET,
            "/v1/inventory/numbers?area_code=617&limit=100",
            &t,
            None,
        )
        .await?;
    assert_eq!(page["items"].as_array().unwrap().len(), 25);
    Ok(())
}

#[tokio::test]
async fn uploads_validate_every_row_and_push_the_good_ones() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let (zoom, t) = verified(&s, "acct-1").await?;
    // JSON: a bad number, a duplicate, an over-long field; the rest go through.
    let body = json!({"numbers": [
        {"number": "+12125550100", "porting_in": true, "billing_ref_id": "B-1"},
        {"number": "212-555-0101"},
        {"number": "+12125550100"},
        {"number": "+12125550102", "service_info": "x".repeat(256)},
        {"number": "+12125550103"},
    ]});
    let (st, acc) = s
        .api(
            Method::POST,
            "/v1/accounts/acct-1/zoom/numbers/uploads",
            &t,
            Some(body),
        )
        .await?;
    assert_eq!(st, 202, "{acc}");
    assert_eq!(acc["total"], 2);
    let rows: Vec<u64> = acc["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, vec![2, 3, 4]);
    let op = s
        .wait_operation(
            "acct-1",
            &t,
            acc["operation_id"].as_str().unwrap(),
            Duration::from_secs(30),
        )
        .await?;
    assert_eq!(op["state"], "succeeded", "{op}");
    let sim = s.sim_numbers(&zoom).await?;
    let porting = sim.iter().find(|n| n["number"] == "+12125550100").unwrap();
    assert_eq!(porting["status"], false, "porting in: inactive in Zoom");
    let active = sim.iter().find(|n| n["number"] == "+12125550103").unwrap();
    assert_eq!(active["status"], true);

    // CSV with a header row and broken rows.
    let csv = "number,porting_in,billing_ref_id\n+12125550200,false,A\nnot-a-number,false,\n+12125550201,true,B\n";
    let r = s
        .http
        .post(format!(
            "{}/v1/accounts/acct-1/zoom/numbers/uploads",
            s.gateway
        ))
        .bearer_auth(&t)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?;
    assert_eq!(r.status(), 202);
    let acc: Value = r.json().await?;
    assert_eq!(
        (acc["total"].as_u64(), acc["rejected"][0]["row"].as_u64()),
        (Some(2), Some(2))
    );
    s.wait_operation(
        "acct-1",
        &t,
        acc["operation_id"].as_str().unwrap(),
        Duration::from_secs(30),
    )
    .await?;

    // all_or_nothing: one bad row refuses everything, nothing is queued or written.
    let before = s.all_items().await?.len();
    let csv = "number\n+12125550300\nbad\n";
    let r = s
        .http
        .post(format!(
            "{}/v1/accounts/acct-1/zoom/numbers/uploads?all_or_nothing=true",
            s.gateway
        ))
        .bearer_auth(&t)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(r.json::<Value>().await?["field"], "numbers");
    assert_eq!(s.all_items().await?.len(), before);

    // Bad requests name the field and write nothing.
    for (body, field) in [
        (
            json!({"numbers": [{"number": "+12125550400", "extra": 1}]}),
            "body",
        ),
        (json!({"numbers": []}), "numbers"),
        (json!({"rows": []}), "body"),
    ] {
        let (st, p) = s
            .api(
                Method::POST,
                "/v1/accounts/acct-1/zoom/numbers/uploads",
                &t,
                Some(body.clone()),
            )
            .await?;
        assert_eq!((st, p["field"].as_str()), (400, Some(field)), "{body}: {p}");
    }
    let big = "number\n".to_owned() + &"+12125550500\n".repeat(200_000);
    let r = s
        .http
        .post(format!(
            "{}/v1/accounts/acct-1/zoom/numbers/uploads",
            s.gateway
        ))
        .bearer_auth(&t)
        .header("content-type", "text/csv")
        .body(big)
        .send()
        .await?;
    assert_eq!(r.status(), 413);
    let (st, p) = s
        .api(
            Method::POST,
            "/v1/accounts/acct-1/zoom/numbers/orders",
            &t,
            Some(json!({"numbers": ["+16175550100", "6175550101"]})),
        )
        .await?;
    assert_eq!((st, p["field"].as_str()), (400, Some("numbers[1]")));
    let (st, p) = s
        .api(
            Method::POST,
            "/v1/accounts/acct-1/zoom/numbers/orders",
            &t,
            Some(json!({"numbers": ["+16175550100", "+16175550100"]})),
        )
        .await?;
    assert_eq!((st, p["field"].as_str()), (400, Some("numbers[1]")));
    assert_eq!(s.all_items().await?.len(), before);
    Ok(())
}

#[tokio::test]
async fn two_tenants_ordering_the_same_numbers_each_number_goes_to_one() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let (_, ta) = verified(&s, "acct-a").await?;
    let (_, tb) = verified(&s, "acct-b").await?;
    let wanted = range("+1617555", 200, 10);
    s.import_inventory(&wanted).await?;
    let body = json!({"numbers": wanted});
    let (a, b) = tokio::join!(
        s.api(
            Method::POST,
            "/v1/accounts/acct-a/zoom/numbers/orders",
            &ta,
            Some(body.clone())
        ),
        s.api(
            Method::POST,
            "/v1/accounts/acct-b/zoom/numbers/orders",
            &tb,
            Some(body.clone())
        ),
    );
    let (a, b) = (a?, b?);
    assert_eq!((a.0, b.0), (202, 202));
    let got = |v: &Value| -> HashSet<String> {
        let rejected: HashSet<String> = v["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["number"].as_str().unwrap().to_owned())
            .collect();
        wanted
            .iter()
            .filter(|n| !rejected.contains(*n))
            .cloned()
            .collect()
    };
    let (ga, gb) = (got(&a.1), got(&b.1));
    assert!(ga.is_disjoint(&gb), "no number reserved twice");
    assert_eq!(
        ga.len() + gb.len(),
        10,
        "every number went to exactly one tenant"
    );
    for r in a.1["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .chain(b.1["rejected"].as_array().unwrap())
    {
        assert!(
            ["not_available", "held_by_another_account"].contains(&r["error"].as_str().unwrap()),
            "{r}"
        );
    }
    Ok(())
}

async fn ordered(s: &Stack, account: &str, t: &str, numbers: &[String]) -> anyhow::Result<()> {
    s.import_inventory(numbers).await?;
    let (st, acc) = s
        .api(
            Method::POST,
            &format!("/v1/accounts/{account}/zoom/numbers/orders"),
            t,
            Some(json!({"numbers": numbers})),
        )
        .await?;
    anyhow::ensure!(st == 202, "order: {acc}");
    let op = s
        .wait_operation(
            account,
            t,
            acc["operation_id"].as_str().unwrap(),
            Duration::from_secs(30),
        )
        .await?;
    anyhow::ensure!(op["state"] == "succeeded", "order: {op}");
    Ok(())
}

#[tokio::test]
async fn assign_and_unassign_users_call_queues_and_auto_receptionists() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let (zoom, t) = verified(&s, "acct-1").await?;
    let nums = range("+1617555", 300, 3);
    ordered(&s, "acct-1", &t, &nums).await?;
    let (st, opts) = s
        .api(
            Method::GET,
            "/v1/accounts/acct-1/zoom/provisioning-options",
            &t,
            None,
        )
        .await?;
    assert_eq!(st, 200, "{opts}");
    let user = opts["users"][1]["id"].as_str().unwrap().to_owned();
    let cq = opts["call_queues"][0]["id"].as_str().unwrap().to_owned();
    let ar = opts["auto_receptionists"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(opts["sites"].as_array().is_some_and(|s| !s.is_empty()));

    for (n, kind, id, zoom_kind) in [
        (&nums[0], "user", &user, "user"),
        (&nums[1], "call_queue", &cq, "callQueue"),
        (&nums[2], "auto_receptionist", &ar, "autoReceptionist"),
    ] {
        let path = format!("/v1/accounts/acct-1/zoom/numbers/{}/assignment", enc(n));
        let (st, v) = s
            .api(
                Method::PUT,
                &path,
                &t,
                Some(json!({"type": kind, "id": id})),
            )
            .await?;
        assert_eq!(st, 200, "{kind}: {v}");
        let live = s.sim_numbers(&zoom).await?;
        let a = &live.iter().find(|x| x["number"] == n.as_str()).unwrap()["assignee"];
        assert_eq!(
            (a["type"].as_str(), a["id"].as_str()),
            (Some(zoom_kind), Some(id.as_str()))
        );
    }
    let (_, list) = s
        .api(
            Method::GET,
            "/v1/accounts/acct-1/zoom/numbers?assigned=true",
            &t,
            None,
        )
        .await?;
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert_eq!(list["items"][0]["assignee"]["name"], "Grace Hopper");

    // Reassigning moves the number (unassigning first).
    let path = format!(
        "/v1/accounts/acct-1/zoom/numbers/{}/assignment",
        enc(&nums[1])
    );
    let (st, v) = s
        .api(
            Method::PUT,
            &path,
            &t,
            Some(json!({"type": "user", "id": user})),
        )
        .await?;
    assert_eq!(
        (st, v["assignee"]["type"].as_str()),
        (200, Some("user")),
        "{v}"
    );
    // The target must exist.
    let (st, p) = s
        .api(
            Method::PUT,
            &path,
            &t,
            Some(json!({"type": "call_queue", "id": "NoSuchQueue0000000000a"})),
        )
        .await?;
    assert_eq!(st, 404, "{p}");
    let (st, p) = s
        .api(
            Method::PUT,
            &path,
            &t,
            Some(json!({"type": "fax", "id": user})),
        )
        .await?;
    assert_eq!(st, 400, "{p}");

    for n in &nums {
        let (st, v) = s
            .api(
                Method::DELETE,
                &format!("/v1/accounts/acct-1/zoom/numbers/{}/assignment", enc(n)),
                &t,
                None,
            )
            .await?;
        assert_eq!((st, v["changed"].as_bool()), (200, Some(true)), "{n}: {v}");
    }
    assert!(
        s.sim_numbers(&zoom)
            .await?
            .iter()
            .all(|x| x["assignee"].is_null())
    );
    Ok(())
}

#[tokio::test]
async fn removal_check_turns_from_blocked_to_ready() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let (zoom, t) = verified(&s, "acct-1").await?;
    let (st, rc) = s
        .api(
            Method::GET,
            "/v1/accounts/acct-1/zoom/removal-check",
            &t,
            None,
        )
        .await?;
    assert_eq!((st, rc["ready"].as_bool()), (200, Some(true)), "{rc}");

    let nums = range("+1617555", 400, 3);
    ordered(&s, "acct-1", &t, &nums).await?;
    let (_, opts) = s
        .api(
            Method::GET,
            "/v1/accounts/acct-1/zoom/provisioning-options",
            &t,
            None,
        )
        .await?;
    let user = opts["users"][0]["id"].as_str().unwrap().to_owned();
    let assign = format!(
        "/v1/accounts/acct-1/zoom/numbers/{}/assignment",
        enc(&nums[0])
    );
    s.api(
        Method::PUT,
        &assign,
        &t,
        Some(json!({"type": "user", "id": user})),
    )
    .await?;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let port = format!(
        "/v1/accounts/acct-1/zoom/numbers/{}/port-out",
        enc(&nums[1])
    );
    let (st, v) = s
        .api(
            Method::PUT,
            &port,
            &t,
            Some(json!({"date": today, "unassign_on_port_day": false})),
        )
        .await?;
    assert_eq!(st, 200, "{v}");

    let (_, rc) = s
        .api(
            Method::GET,
            "/v1/accounts/acct-1/zoom/removal-check",
            &t,
            None,
        )
        .await?;
    assert_eq!(rc["ready"], false);
    let reasons: HashSet<(String, String)> = rc["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["number"].as_str().unwrap_or_default().to_owned(),
                b["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        reasons.contains(&(nums[0].clone(), "assigned".into())),
        "{rc}"
    );
    assert!(
        reasons.contains(&(nums[1].clone(), "port_out_not_complete".into())),
        "{rc}"
    );
    assert!(
        reasons.contains(&(nums[2].clone(), "no_disposition".into())),
        "{rc}"
    );
    assert!(
        rc["blockers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| !b["next_step"].as_str().unwrap().is_empty())
    );
    assert_eq!(rc["summary"]["numbers_in_zoom"], 3);

    // Clear them: unassign, complete the port (carrier), release the third.
    s.api(Method::DELETE, &assign, &t, None).await?;
    let port0 = format!(
        "/v1/accounts/acct-1/zoom/numbers/{}/port-out",
        enc(&nums[0])
    );
    s.api(Method::PUT, &port0, &t, Some(json!({"date": today})))
        .await?;
    let carrier = s.carrier_token().await?;
    // Customers may not complete ports.
    let (st, _) = s
        .api(
            Method::POST,
            &format!(
                "/v1/accounts/acct-1/zoom/numbers/{}/port-out-complete",
                enc(&nums[0])
            ),
            &t,
            None,
        )
        .await?;
    assert_eq!(st, 403);
    for n in &nums[..2] {
        let (st, v) = s
            .api(
                Method::POST,
                &format!(
                    "/v1/accounts/acct-1/zoom/numbers/{}/port-out-complete",
                    enc(n)
                ),
                &carrier,
                None,
            )
            .await?;
        assert_eq!((st, v["state"].as_str()), (200, Some("ported_out")), "{v}");
    }
    let (st, acc) = s
        .api(
            Method::POST,
            &format!("/v1/accounts/acct-1/zoom/numbers/{}/release", enc(&nums[2])),
            &t,
            None,
        )
        .await?;
    assert_eq!(st, 202, "{acc}");
    let op = s
        .wait_operation(
            "acct-1",
            &t,
            acc["operation_id"].as_str().unwrap(),
            Duration::from_secs(30),
        )
        .await?;
    assert_eq!(op["state"], "succeeded", "{op}");
    let (_, rc) = s
        .api(
            Method::GET,
            "/v1/accounts/acct-1/zoom/removal-check",
            &t,
            None,
        )
        .await?;
    assert_eq!(rc["ready"], true, "{rc}");
    assert!(s.sim_numbers(&zoom).await?.is_empty());
    // The released number is back in inventory; the ported ones are not.
    let (_, inv) = s
        .api(
            Method::GET,
            "/v1/inventory/numbers?area_code=617&limit=100",
            &t,
            None,
        )
        .await?;
    let avail: Vec<&str> = inv["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(avail, vec![nums[2].as_str()]);
    Ok(())
}

#[tokio::test]
async fn port_day_unassignment_runs_when_the_day_comes() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let (zoom, t) = verified(&s, "acct-1").await?;
    let nums = range("+1617555", 500, 1);
    ordered(&s, "acct-1", &t, &nums).await?;
    let (_, opts) = s
        .api(
            Method::GET,
            "/v1/accounts/acct-1/zoom/provisioning-options",
            &t,
            None,
        )
        .await?;
    let user = opts["users"][0]["id"].as_str().unwrap().to_owned();
    s.api(
        Method::PUT,
        &format!(
            "/v1/accounts/acct-1/zoom/numbers/{}/assignment",
            enc(&nums[0])
        ),
        &t,
        Some(json!({"type": "user", "id": user})),
    )
    .await?;
    let port_day = (time::OffsetDateTime::now_utc() + time::Duration::days(3)).date();
    let (st, v) = s
        .api(
            Method::PUT,
            &format!(
                "/v1/accounts/acct-1/zoom/numbers/{}/port-out",
                enc(&nums[0])
            ),
            &t,
            Some(json!({"date": port_day.to_string(), "unassign_on_port_day": true})),
        )
        .await?;
    assert_eq!(st, 200, "{v}");
    let (st, p) = s
        .api(
            Method::PUT,
            &format!(
                "/v1/accounts/acct-1/zoom/numbers/{}/port-out",
                enc(&nums[0])
            ),
            &t,
            Some(json!({"date": "2020-01-01"})),
        )
        .await?;
    assert_eq!(
        (st, p["field"].as_str()),
        (400, Some("date")),
        "past dates are refused"
    );

    let clock =
        shared::clock::ManualClock::new(time::OffsetDateTime::now_utc() + time::Duration::days(2));
    let ctx = s.context(clock.clone()).await?;
    let r = reconcile::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(r["port_day"]["due"], 0, "not yet");
    assert!(!s.sim_numbers(&zoom).await?[0]["assignee"].is_null());
    clock.set(port_day.midnight().assume_utc() + time::Duration::hours(1));
    let r = reconcile::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(
        r["port_day"],
        json!({"due": 1, "unassigned": 1, "failed": 0})
    );
    assert!(
        s.sim_numbers(&zoom).await?[0]["assignee"].is_null(),
        "unassigned on the port day"
    );
    let r = reconcile::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(r["port_day"]["due"], 0, "done once");
    Ok(())
}

#[tokio::test]
async fn another_tenants_account_number_and_operation_are_refused() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let (_, ta) = verified(&s, "acct-a").await?;
    let (_, tb) = verified(&s, "acct-b").await?;
    let nums = range("+1617555", 600, 1);
    s.import_inventory(&nums).await?;
    let (_, acc) = s
        .api(
            Method::POST,
            "/v1/accounts/acct-a/zoom/numbers/orders",
            &ta,
            Some(json!({"numbers": nums})),
        )
        .await?;
    let op = acc["operation_id"].as_str().unwrap().to_owned();
    s.wait_operation("acct-a", &ta, &op, Duration::from_secs(30))
        .await?;
    let n = enc(&nums[0]);
    let before = s.all_items().await?.len();
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/accounts/acct-a/zoom/numbers".into(), None),
        (
            Method::POST,
            "/v1/accounts/acct-a/zoom/numbers/orders".into(),
            Some(json!({"area_code": "617", "quantity": 1})),
        ),
        (
            Method::POST,
            "/v1/accounts/acct-a/zoom/numbers/uploads".into(),
            Some(json!({"numbers": [{"number": "+19995550000"}]})),
        ),
        (
            Method::GET,
            format!("/v1/accounts/acct-a/zoom/operations/{op}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/accounts/acct-a/zoom/operations/{op}/retry"),
            None,
        ),
        (
            Method::GET,
            "/v1/accounts/acct-a/zoom/provisioning-options".into(),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/accounts/acct-a/zoom/numbers/{n}/assignment"),
            Some(json!({"type": "user", "id": "x"})),
        ),
        (
            Method::DELETE,
            format!("/v1/accounts/acct-a/zoom/numbers/{n}/assignment"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/accounts/acct-a/zoom/numbers/{n}/port-out"),
            Some(json!({"date": "2030-01-01"})),
        ),
        (
            Method::DELETE,
            format!("/v1/accounts/acct-a/zoom/numbers/{n}/port-out"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/accounts/acct-a/zoom/numbers/{n}/release"),
            None,
        ),
        (
            Method::GET,
            "/v1/accounts/acct-a/zoom/removal-check".into(),
            None,
        ),
    ];
    for (m, path, body) in cases {
        let (st, _) = s.api(m.clone(), &path, &tb, body).await?;
        assert_eq!(st, 403, "{m} {path}");
    }
    // B naming A's number or operation under its own account finds nothing.
    let (st, _) = s
        .api(
            Method::GET,
            &format!("/v1/accounts/acct-b/zoom/operations/{op}"),
            &tb,
            None,
        )
        .await?;
    assert_eq!(st, 404);
    let (st, _) = s
        .api(
            Method::POST,
            &format!("/v1/accounts/acct-b/zoom/numbers/{n}/release"),
            &tb,
            None,
        )
        .await?;
    assert_eq!(st, 404);
    let (st, _) = s
        .api(
            Method::PUT,
            &format!("/v1/accounts/acct-b/zoom/numbers/{n}/port-out"),
            &tb,
            Some(json!({"date": "2030-01-01"})),
        )
        .await?;
    assert_eq!(st, 404);
    // And uploading A's number is refused per row.
    let (st, v) = s
        .api(
            Method::POST,
            "/v1/accounts/acct-b/zoom/numbers/uploads",
            &tb,
            Some(json!({"numbers": [{"number": nums[0]}]})),
        )
        .await?;
    assert_eq!((st, v["field"].as_str()), (400, Some("numbers")), "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("held by another account")
    );
    assert_eq!(s.all_items().await?.len(), before, "nothing written");
    Ok(())
}

/// 2 000 numbers under injected 429s, 5xx, delays, and a worker killed
/// mid-job: the final Zoom state is exactly the requested set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_upload_survives_faults_and_a_worker_crash() -> anyhow::Result<()> {
    let mut s = Stack::start().await?;
    let (zoom, t) = verified(&s, "acct-1").await?;
    let wanted: Vec<String> = range("+1303555", 0, 2000);
    for f in [
        json!({"path": "/v2/number_management/peering_numbers", "method": "POST", "status": 429, "times": 2,
               "headers": {"retry-after": "1"}, "body": {"code": 429, "message": "You have reached the maximum per-second rate limit for this API. Try again later."}}),
        json!({"path": "/v2/number_management/peering_numbers", "method": "POST", "status": 503, "times": 2}),
        json!({"path": "/v2/number_management/peering_numbers", "method": "POST", "delay_ms": 300, "times": 3}),
    ] {
        s.fault(f).await?;
    }
    let rows: Vec<Value> = wanted.iter().map(|n| json!({"number": n})).collect();
    let (st, acc) = s
        .api(
            Method::POST,
            "/v1/accounts/acct-1/zoom/numbers/uploads",
            &t,
            Some(json!({"numbers": rows})),
        )
        .await?;
    assert_eq!((st, acc["total"].as_u64()), (202, Some(2000)), "{acc}");
    let op = acc["operation_id"].as_str().unwrap().to_owned();
    // Kill the worker once some batches are in Zoom but not all.
    for _ in 0..600 {
        let n = s.sim_numbers(&zoom).await?.len();
        if n >= 400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mid = s.sim_numbers(&zoom).await?.len();
    s.crash_and_restart_gateway().await?;
    let t = s.token("acct-1").await?; // the new gateway signs with a new key
    let done = s
        .wait_operation("acct-1", &t, &op, Duration::from_secs(120))
        .await?;
    assert_eq!(
        (
            done["state"].as_str(),
            done["succeeded"].as_u64(),
            done["failed"].as_u64()
        ),
        (Some("succeeded"), Some(2000), Some(0)),
        "{done}"
    );
    let in_zoom: Vec<String> = s
        .sim_numbers(&zoom)
        .await?
        .iter()
        .map(|n| n["number"].as_str().unwrap().to_owned())
        .collect();
    let set: HashSet<&String> = in_zoom.iter().collect();
    assert_eq!(in_zoom.len(), 2000, "nothing duplicated");
    assert_eq!(set, wanted.iter().collect::<HashSet<_>>(), "nothing lost");
    let counters = s.sim_get("/_sim/counters").await?;
    println!(
        "bulk: crash after {mid} numbers were in Zoom; Zoom calls {}; 429s answered {}",
        counters["api_calls"], counters["rate_limited"]
    );
    Ok(())
}

#[tokio::test]
async fn reconciliation_repairs_drift_and_audits_it() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let (zoom, t) = verified(&s, "acct-1").await?;
    let nums = range("+1617555", 700, 2);
    ordered(&s, "acct-1", &t, &nums).await?;
    // Someone removes a number in Zoom's Provider Portal, behind our back.
    let ctx = s
        .context(shared::clock::ManualClock::new(
            time::OffsetDateTime::now_utc(),
        ))
        .await?;
    let account = shared::ids::PortalAccountId::parse("acct-1")?;
    shared::zoom_api::call(
        &ctx,
        &account,
        &zoom,
        shared::zoom_api::Label::Light,
        Method::DELETE,
        "number_management/peering_numbers",
        &[("phone_numbers", nums[0].clone())],
        None,
    )
    .await?;
    let r = reconcile::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(r["drift"]["missing_in_zoom"], 1, "{r}");
    let (_, list) = s
        .api(
            Method::GET,
            "/v1/accounts/acct-1/zoom/numbers?state=push_failed",
            &t,
            None,
        )
        .await?;
    assert_eq!(list["items"][0]["number"], nums[0].as_str(), "{list}");
    let audit = ctx.store.list_audit(&account).await?;
    assert!(
        audit
            .iter()
            .any(|a| a.action == "number_drift_missing_in_zoom")
    );
    // A second run finds nothing new.
    let r = reconcile::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(
        (
            r["drift"]["missing_in_zoom"].as_u64(),
            r["drift"]["unknown_in_zoom"].as_u64()
        ),
        (Some(0), Some(0)),
        "{r}"
    );
    Ok(())
}

#[tokio::test]
async fn poison_messages_land_in_the_dead_letter_queue() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let sqs = aws_sdk_sqs::Client::new(&e2e::aws().await);
    sqs.send_message()
        .queue_url(&s.queue_url)
        .message_body("this is not a work message")
        .send()
        .await?;
    // The gateway's event source mapping receives it, the worker reports it
    // failed each time, and after 5 receives the redrive policy moves it.
    let mut moved = None;
    for _ in 0..120 {
        let got = sqs
            .receive_message()
            .queue_url(&s.dlq_url)
            .wait_time_seconds(1)
            .send()
            .await?;
        if let Some(m) = got.messages().first() {
            moved = m.body().map(str::to_owned);
            break;
        }
    }
    assert_eq!(moved.as_deref(), Some("this is not a work message"));
    Ok(())
}

#[tokio::test]
async fn an_operation_for_a_disconnected_account_fails_instead_of_retrying_forever()
-> anyhow::Result<()> {
    let s = Stack::start().await?;
    let (zoom, t) = verified(&s, "acct-1").await?;
    let ctx = s
        .context(shared::clock::ManualClock::new(
            time::OffsetDateTime::now_utc(),
        ))
        .await?;
    let account = shared::ids::PortalAccountId::parse("acct-1")?;
    let rows = vec![shared::numbers::RawUploadRow {
        number: "+12125550900".into(),
        porting_in: false,
        billing_ref_id: None,
        service_info: None,
    }];
    // Queue an upload in-process, then the customer removes the app before the worker runs.
    let acc = shared::numbers::upload(&ctx, &account, "test", rows, false).await?;
    let audit = shared::store::AuditItem::new(&account, ctx.clock.now(), "test", "test", None);
    ctx.store
        .mark_disconnected(
            &account,
            &shared::ids::ZoomAccountId::parse(&zoom)?,
            None,
            &audit,
            ctx.clock.now(),
        )
        .await?;
    let op = s
        .wait_operation("acct-1", &t, &acc.operation_id, Duration::from_secs(30))
        .await?;
    assert_eq!(
        (op["state"].as_str(), op["failed"].as_u64()),
        (Some("failed"), Some(1)),
        "{op}"
    );
    Ok(())
}

#[tokio::test]
async fn an_operation_whose_message_was_lost_is_sent_again_by_reconciliation() -> anyhow::Result<()>
{
    let s = Stack::start().await?;
    let (zoom, t) = verified(&s, "acct-1").await?;
    let sqs = aws_sdk_sqs::Client::new(&e2e::aws().await);
    // The message goes to a queue nobody reads: as good as lost.
    let (hole, _) = local_gateway::provision::create_queues(&sqs, &e2e::unique("hole"), 3).await?;
    let clock = shared::clock::ManualClock::new(time::OffsetDateTime::now_utc());
    let lost = s
        .context_with(clock.clone(), &[("NUMBER_QUEUE_URL", &hole)])
        .await?;
    let account = shared::ids::PortalAccountId::parse("acct-1")?;
    let rows = vec![shared::numbers::RawUploadRow {
        number: "+12125550950".into(),
        porting_in: false,
        billing_ref_id: None,
        service_info: None,
    }];
    let acc = shared::numbers::upload(&lost, &account, "test", rows, false).await?;
    let ctx = s.context(clock.clone()).await?;
    let r = reconcile::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(
        r["stale_operations"],
        json!({"stale": 0, "requeued": 0}),
        "not stale yet"
    );
    clock.advance(time::Duration::minutes(16));
    let r = reconcile::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(r["stale_operations"], json!({"stale": 1, "requeued": 1}));
    let op = s
        .wait_operation("acct-1", &t, &acc.operation_id, Duration::from_secs(30))
        .await?;
    assert_eq!(op["state"], "succeeded", "{op}");
    assert_eq!(s.sim_numbers(&zoom).await?.len(), 1);
    clock.advance(time::Duration::minutes(16));
    let r = reconcile::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(
        r["stale_operations"]["stale"], 0,
        "a finished operation leaves the index"
    );
    Ok(())
}

#[tokio::test]
async fn retry_redrives_only_the_failed_numbers_and_port_in_completes() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let (zoom_a, ta) = verified(&s, "acct-a").await?;
    let (zoom_b, _) = verified(&s, "acct-b").await?;
    let clock = shared::clock::ManualClock::new(time::OffsetDateTime::now_utc());
    let ctx = s.context(clock).await?;
    let b = shared::ids::PortalAccountId::parse("acct-b")?;
    // Another Zoom account already has one of the numbers (outside this service).
    let taken = "+12125550701";
    let body = json!({"phone_numbers": [{"phone_number": taken, "sip_trunk_name": "carrier-trunk-1", "status": true}]});
    shared::zoom_api::call(
        &ctx,
        &b,
        &zoom_b,
        shared::zoom_api::Label::Light,
        Method::POST,
        "number_management/peering_numbers",
        &[],
        Some(&body),
    )
    .await?;

    let rows =
        json!({"numbers": [{"number": "+12125550700", "porting_in": true}, {"number": taken}]});
    let (_, acc) = s
        .api(
            Method::POST,
            "/v1/accounts/acct-a/zoom/numbers/uploads",
            &ta,
            Some(rows),
        )
        .await?;
    let op = acc["operation_id"].as_str().unwrap().to_owned();
    let done = s
        .wait_operation("acct-a", &ta, &op, Duration::from_secs(30))
        .await?;
    assert_eq!(
        (
            done["state"].as_str(),
            done["succeeded"].as_u64(),
            done["failed"].as_u64()
        ),
        (Some("partially_failed"), Some(1), Some(1)),
        "{done}"
    );
    let (_, full) = s
        .api(
            Method::GET,
            &format!("/v1/accounts/acct-a/zoom/operations/{op}"),
            &ta,
            None,
        )
        .await?;
    let failed: Vec<&Value> = full["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "failed")
        .collect();
    assert_eq!(
        (failed[0]["number"].as_str(), failed[0]["reason"].as_str()),
        (Some(taken), Some("Phone number is used by another account"))
    );

    // The other account lets go of it; retry re-drives just that number.
    shared::zoom_api::call(
        &ctx,
        &b,
        &zoom_b,
        shared::zoom_api::Label::Light,
        Method::DELETE,
        "number_management/peering_numbers",
        &[("phone_numbers", taken.to_owned())],
        None,
    )
    .await?;
    let before =
        s.sim_get("/_sim/counters").await?["api_calls"]["POST /number_management/peering_numbers"]
            .as_u64()
            .unwrap_or(0);
    let (st, r) = s
        .api(
            Method::POST,
            &format!("/v1/accounts/acct-a/zoom/operations/{op}/retry"),
            &ta,
            None,
        )
        .await?;
    assert_eq!(st, 202, "{r}");
    let done = s
        .wait_operation("acct-a", &ta, &op, Duration::from_secs(30))
        .await?;
    assert_eq!(
        (
            done["state"].as_str(),
            done["succeeded"].as_u64(),
            done["failed"].as_u64()
        ),
        (Some("succeeded"), Some(2), Some(0)),
        "{done}"
    );
    let after =
        s.sim_get("/_sim/counters").await?["api_calls"]["POST /number_management/peering_numbers"]
            .as_u64()
            .unwrap_or(0);
    assert_eq!(after - before, 1, "one push, for the one failed number");
    let (st, _) = s
        .api(
            Method::POST,
            &format!("/v1/accounts/acct-a/zoom/operations/{op}/retry"),
            &ta,
            None,
        )
        .await?;
    assert_eq!(st, 409, "nothing left to retry");

    // The porting-in number is inactive in Zoom until the carrier completes the port.
    let status_of = |nums: &[Value], n: &str| {
        nums.iter()
            .find(|x| x["number"] == n)
            .map(|x| x["status"].clone())
    };
    assert_eq!(
        status_of(&s.sim_numbers(&zoom_a).await?, "+12125550700"),
        Some(json!(false))
    );
    let carrier = s.carrier_token().await?;
    let (st, v) = s
        .api(
            Method::POST,
            "/v1/accounts/acct-a/zoom/numbers/%2B12125550700/port-in-complete",
            &carrier,
            None,
        )
        .await?;
    assert_eq!((st, v["zoom_active"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(
        status_of(&s.sim_numbers(&zoom_a).await?, "+12125550700"),
        Some(json!(true))
    );
    let (st, _) = s
        .api(
            Method::POST,
            "/v1/accounts/acct-a/zoom/numbers/%2B12125550700/port-in-complete",
            &ta,
            None,
        )
        .await?;
    assert_eq!(st, 403, "customers cannot complete ports");
    Ok(())
}
