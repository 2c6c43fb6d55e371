//! The K3Cloud simulator refuses what a real server refuses, with its
//! MsgCodes, over real HTTP: each case here was accepted by the lenient
//! simulator before (and so made green tests prove little).

use daifa_host::erp::kingdee::sign::{AppCredentials, fresh_nonce, signed_headers};
use daifa_host::sim::kingdee::{KingdeeSim, KingdeeSimConfig, SignError, login_sign};
use serde_json::{Value, json};

const STUB: &str = "Kingdee.BOS.WebApi.ServicesStub.";

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// One signed call with fresh headers (no session reuse).
async fn call_as(sim: &KingdeeSim, creds: &AppCredentials, service: &str, body: Value) -> Value {
    let url = format!("{}{STUB}{service}.common.kdsvc", sim.server_url());
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut req = http().post(&url).body(body.to_string());
    for (k, v) in signed_headers(creds, &url, ts, &fresh_nonce()) {
        req = req.header(k, v);
    }
    req.send().await.unwrap().json().await.unwrap()
}

async fn call(sim: &KingdeeSim, service: &str, body: Value) -> Value {
    call_as(sim, &sim.credentials(), service, body).await
}

fn status(v: &Value) -> (bool, i64, String) {
    let s = &v["Result"]["ResponseStatus"];
    (
        s["IsSuccess"].as_bool().unwrap_or(false),
        s["MsgCode"].as_i64().unwrap_or(-1),
        s["Errors"][0]["Message"].as_str().unwrap_or_default().to_string(),
    )
}

async fn query(sim: &KingdeeSim, data: Value) -> Value {
    call(sim, "DynamicFormService.ExecuteBillQuery", json!({ "data": data })).await
}

fn query_error(v: &Value) -> (i64, String) {
    let s = &v[0][0]["Result"]["ResponseStatus"];
    (s["MsgCode"].as_i64().unwrap_or(-1), s["Errors"][0]["Message"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn save_on_an_approved_sales_order_is_refused_and_a_save_stamps_fmodifydate() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fid = sim.generate(1)[0];
    let before = sim.with(|s| s.sale_orders[0].modify_date.clone());
    let save = |fid: i64| json!({ "formid": "SAL_SaleOrder", "data": { "Model": { "FID": fid, "FNote": "changed" } } });
    let r = call(&sim, "DynamicFormService.Save", save(fid)).await;
    let (ok, code, msg) = status(&r);
    assert!(!ok && code == 11 && msg.contains("已审核"), "{r}");
    assert_eq!(sim.with(|s| s.sale_orders[0].note.clone()), "", "nothing changed");

    // UnAudit, edit, and the edit carries a new FModifyDate.
    let number = format!("XSDD{fid:08}");
    let r =
        call(&sim, "DynamicFormService.UnAudit", json!({ "formid": "SAL_SaleOrder", "data": { "Numbers": [number] } }))
            .await;
    assert!(status(&r).0, "{r}");
    let r = call(&sim, "DynamicFormService.Save", save(fid)).await;
    assert!(status(&r).0, "{r}");
    let (note, after, st) = sim.with(|s| {
        (s.sale_orders[0].note.clone(), s.sale_orders[0].modify_date.clone(), s.sale_orders[0].status.clone())
    });
    assert_eq!((note.as_str(), st.as_str()), ("changed", "D"));
    assert!(after > before);

    // An edit is applied whole: header, a new line, and (IsDeleteEntry)
    // the lines it leaves out are gone; a field it cannot keep is refused.
    let keep = sim.with(|s| s.sale_orders[0].lines[0].entry_id);
    let edit = json!({ "formid": "SAL_SaleOrder", "data": { "IsDeleteEntry": "true", "Model": { "FID": fid, "FCustId": { "FNumber": "CUST999" },
        "FSaleOrderEntry": [{ "FEntryID": keep, "FQty": 9 }, { "FMaterialId": { "FNumber": "MAT00077" }, "FQty": 2 }] } } });
    assert!(status(&call(&sim, "DynamicFormService.Save", edit).await).0);
    let (customer, lines) = sim.with(|s| {
        let o = &s.sale_orders[0];
        (o.customer.clone(), o.lines.iter().map(|l| (l.material.clone(), l.qty.clone())).collect::<Vec<_>>())
    });
    assert_eq!(customer, "CUST999");
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0].1.as_str(), lines[1].0.as_str()), ("9", "MAT00077"));
    let r = call(
        &sim,
        "DynamicFormService.Save",
        json!({ "formid": "SAL_SaleOrder", "data": { "Model": { "FID": fid, "FSalerId": { "FNumber": "S1" } } } }),
    )
    .await;
    assert_eq!(status(&r).1, 11, "not silently dropped: {r}");
}

#[tokio::test]
async fn push_is_quantity_controlled_and_an_approved_order_with_downstream_cannot_be_unaudited() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fid = sim.generate(1)[0];
    let number = format!("XSDD{fid:08}");
    let push = json!({ "formid": "SAL_SaleOrder", "data": { "Numbers": [number], "TargetFormId": "SAL_OUTSTOCK", "IsEnableDefaultRule": "true" } });
    assert!(status(&call(&sim, "DynamicFormService.Push", push.clone()).await).0);
    let r = call(&sim, "DynamicFormService.Push", push).await;
    assert_eq!(status(&r).1, 11, "a second full push is refused: {r}");
    assert_eq!(sim.with(|s| s.outstocks.len()), 1);
    let r =
        call(&sim, "DynamicFormService.UnAudit", json!({ "formid": "SAL_SaleOrder", "data": { "Numbers": [number] } }))
            .await;
    assert!(status(&r).2.contains("下游单据"), "{r}");
    // Without a rule the server does not guess one.
    let r =
        call(&sim, "DynamicFormService.Push", json!({ "formid": "SAL_SaleOrder", "data": { "Numbers": [number] } }))
            .await;
    assert_eq!(status(&r).1, 8, "{r}");
    // Deleting the outbound document frees the quantity again.
    let out = sim.with(|s| s.outstocks[0]["FBillNo"].as_str().unwrap().to_string());
    let r = call(&sim, "DynamicFormService.Delete", json!({ "formid": "SAL_OUTSTOCK", "data": { "Numbers": [out] } }))
        .await;
    assert!(status(&r).0, "{r}");
    let left = sim.with(|s| s.sale_orders[0].lines.iter().all(|l| l.stock_out_qty.is_zero()));
    assert!(left);
}

#[tokio::test]
async fn the_array_filter_is_applied_and_comparisons_ignore_case() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(20);
    let number = format!("XSDD{:08}", fids[3]);
    let rows = query(&sim, json!({ "FormId": "SAL_SaleOrder", "FieldKeys": "FID",
        "FilterString": [{ "Left": "", "FieldName": "FBillNo", "Compare": "67", "Value": number, "Right": "", "Logic": 0 }] }))
    .await;
    assert_eq!(rows, json!([[fids[3]]]), "one row, not every row");
    let lower = number.to_lowercase();
    for filter in [
        format!("FBillNo = '{lower}'"),
        format!("FBillNo = N'{lower}'"),
        format!("FBillNo LIKE 'XS%{}'", &lower[lower.len() - 4..]),
        format!("FID BETWEEN {} AND {} AND FBillNo LIKE 'xsdd%'", fids[3], fids[3]),
        format!("FNote IS NOT NULL AND FID = {}", fids[3]),
    ] {
        let rows = query(&sim, json!({ "FormId": "SAL_SaleOrder", "FieldKeys": "FID", "FilterString": filter })).await;
        assert_eq!(rows, json!([[fids[3]]]), "{filter}");
    }
    let bad = query(
        &sim,
        json!({ "FormId": "SAL_SaleOrder", "FieldKeys": "FID",
        "FilterString": [{ "FieldName": "FBillNo", "Compare": "12345", "Value": "x" }] }),
    )
    .await;
    assert_eq!(query_error(&bad).0, 8, "an unknown comparison is refused, not ignored: {bad}");
}

#[tokio::test]
async fn unknown_fields_are_msgcode_9_on_every_form_and_custom_fields_exist_only_where_installed() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(2);
    for (form, field) in
        [("PUR_PurchaseOrder", "F_NoSuch"), ("SAL_OUTSTOCK", "FNoSuchField"), ("SAL_SaleOrder", "FCarriageNO")]
    {
        let r = query(&sim, json!({ "FormId": form, "FieldKeys": format!("FID,{field}") })).await;
        assert_eq!(query_error(&r), (9, format!("元数据中标识为 {field} 的字段不存在")), "{form}");
    }
    let stock = KingdeeSim::start(KingdeeSimConfig::stock(), 0).await.unwrap();
    stock.generate(2);
    let r = query(&stock, json!({ "FormId": "SAL_SaleOrder", "FieldKeys": "FID,F_DAIFA_DropShip" })).await;
    assert_eq!(query_error(&r).0, 9, "a stock K3Cloud has no daifa fields");
    let r = query(&stock, json!({ "FormId": "SAL_SaleOrder",
        "FieldKeys": "FBillNo,FBillTypeID.FNumber,FReceiveAddress,FLinkMan,FApproveDate,FSalerId.FNumber,FCloseStatus,FSaleOrderEntry_FEntryID,FUnitID.FNumber,FDeliveryDate",
        "FilterString": "FBillTypeID.FNumber = 'XSDD10_SYS' AND FApproveDate IS NOT NULL" }))
    .await;
    let rows = r.as_array().unwrap();
    assert!(!rows.is_empty() && rows[0].as_array().unwrap().len() == 10, "{r}");
    assert!(
        rows[0][2].as_str().unwrap().contains('省') || rows[0][2].as_str().unwrap().contains('市'),
        "a whole address: {r}"
    );
}

#[tokio::test]
async fn signatures_are_checked_whole_and_a_nonce_is_used_once() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    sim.generate(1);
    let q = json!({ "data": { "FormId": "SAL_SaleOrder", "FieldKeys": "FID" } });
    let good = sim.credentials();
    // The HMACs are right for each of these, but the values are not.
    for (creds, why) in [
        (AppCredentials { user_name: "intruder".into(), ..good.clone() }, SignError::Mismatch("user_name")),
        (AppCredentials { lcid: 9999, ..good.clone() }, SignError::Mismatch("lcid")),
        (AppCredentials { org_num: 777, ..good.clone() }, SignError::Mismatch("org_num")),
        (AppCredentials { acct_id: "other".into(), ..good.clone() }, SignError::Mismatch("acct_id")),
    ] {
        let r = call_as(&sim, &creds, "DynamicFormService.ExecuteBillQuery", q.clone()).await;
        assert_eq!(query_error(&r).0, 1, "{why:?}: {r}");
        assert_eq!(sim.with(|s| s.refused_signatures.last().cloned()), Some(why));
    }
    assert!(
        call_as(
            &sim,
            &AppCredentials { org_num: 100, ..good.clone() },
            "DynamicFormService.ExecuteBillQuery",
            q.clone()
        )
        .await[0][0]
            .is_number()
    );

    // A replayed request (same nonce, same signature) is refused.
    let url = format!("{}{STUB}DynamicFormService.ExecuteBillQuery.common.kdsvc", sim.server_url());
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let headers = signed_headers(&good, &url, ts, "nonce-1");
    let send = || {
        let mut req = http().post(&url).body(q.to_string());
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        req.send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    assert!(first[0][0].is_number(), "{first}");
    let replay: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(query_error(&replay).0, 1);
    assert_eq!(sim.with(|s| s.refused_signatures.last().cloned()), Some(SignError::ReplayedNonce));
}

#[tokio::test]
async fn login_by_sign_and_the_licence_limit() {
    let cfg = KingdeeSimConfig { max_sessions: 1, ..Default::default() };
    let sim = KingdeeSim::start(cfg, 0).await.unwrap();
    let c = sim.credentials();
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let sign = login_sign(&c.acct_id, &c.user_name, &c.app_id, &c.app_secret, &ts);
    let url = format!("{}{STUB}AuthService.LoginBySign.common.kdsvc", sim.server_url());
    let login = |sign: String| {
        let body = json!({ "parameters": [c.acct_id, c.user_name, c.app_id, ts, sign, 2052] });
        http().post(&url).body(body.to_string()).send()
    };
    let bad: Value = login("0".repeat(64)).await.unwrap().json().await.unwrap();
    assert_eq!(bad["LoginResultType"], -1);
    let ok: Value = login(sign.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(ok["LoginResultType"], 1, "a correct sign logs in: {ok}");
    let full: Value = login(sign).await.unwrap().json().await.unwrap();
    assert!(full["Message"].as_str().unwrap().contains("许可"), "the licence allows one session: {full}");

    let dc: Value = http()
        .post(format!(
            "{}Kingdee.BOS.ServiceFacade.ServicesStub.Account.AccountService.GetDataCenterList.common.kdsvc",
            sim.server_url()
        ))
        .body("{}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dc[0]["Id"], c.acct_id.as_str());
}

#[tokio::test]
async fn batch_save_draft_delete_operations_and_business_info() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let po = |no: &str, qty: i64| {
        json!({ "FSupplierId": { "FNumber": "VEN01" }, "FPurchaseOrgId": { "FNumber": "100" }, "F_DAIFA_PoNo": no,
                "FPOOrderEntry": [{ "FMaterialId": { "FNumber": "MAT00001" }, "FQty": qty }] })
    };
    let r = call(
        &sim,
        "DynamicFormService.BatchSave",
        json!({ "formid": "PUR_PurchaseOrder", "data": { "Model": [po("B-1", 1), po("B-2", 0), po("B-3", 2)] } }),
    )
    .await;
    let s = &r["Result"]["ResponseStatus"];
    assert_eq!((s["IsSuccess"].clone(), s["SuccessEntitys"].as_array().unwrap().len()), (json!(false), 2), "{r}");
    assert_eq!(s["Errors"][0]["DIndex"], 1, "the bad one is named by its index");

    let r = call(
        &sim,
        "DynamicFormService.Draft",
        json!({ "formid": "PUR_PurchaseOrder", "data": { "Model": { "F_DAIFA_PoNo": "D-1" } } }),
    )
    .await;
    assert!(status(&r).0, "a draft skips required fields: {r}");
    let draft = r["Result"]["Number"].as_str().unwrap().to_string();
    let r = call(
        &sim,
        "DynamicFormService.Submit",
        json!({ "formid": "PUR_PurchaseOrder", "data": { "Numbers": [draft] } }),
    )
    .await;
    assert_eq!(status(&r).1, 11, "a draft cannot be submitted: {r}");
    let r = call(
        &sim,
        "DynamicFormService.Delete",
        json!({ "formid": "PUR_PurchaseOrder", "data": { "Numbers": [draft] } }),
    )
    .await;
    assert!(status(&r).0, "{r}");

    let first = sim.with(|s| s.purchase_orders[0]["FBillNo"].as_str().unwrap().to_string());
    for op in ["Submit", "Audit"] {
        call(
            &sim,
            &format!("DynamicFormService.{op}"),
            json!({ "formid": "PUR_PurchaseOrder", "data": { "Numbers": [first] } }),
        )
        .await;
    }
    let r = call(
        &sim,
        "DynamicFormService.Delete",
        json!({ "formid": "PUR_PurchaseOrder", "data": { "Numbers": [first] } }),
    )
    .await;
    assert_eq!(status(&r).1, 11, "an approved document cannot be deleted");
    let op = |code: &str| json!({ "formid": "PUR_PurchaseOrder", "opNumber": code, "data": { "Numbers": [first] } });
    assert!(status(&call(&sim, "DynamicFormService.ExcuteOperation", op("BillClose")).await).0);
    assert_eq!(sim.with(|s| s.purchase_orders[0]["FCloseStatus"].clone()), "B");
    assert_eq!(
        status(&call(&sim, "DynamicFormService.ExcuteOperation", op("Cancel")).await).1,
        11,
        "approved: no void"
    );
    assert_eq!(status(&call(&sim, "DynamicFormService.ExcuteOperation", op("NoSuchOp")).await).1, 4);

    let r =
        call(&sim, "DynamicFormService.QueryBusinessInfo", json!({ "data": { "FormId": "PUR_PurchaseOrder" } })).await;
    let fields = r["Result"]["NeedReturnData"]["Entrys"][0]["Fields"].to_string();
    assert!(fields.contains("FSupplierId") && fields.contains("F_DAIFA_PoNo"), "{r}");

    // Unknown Model keys are dropped, as the real server does.
    let r = call(&sim, "DynamicFormService.Save", json!({ "formid": "PUR_PurchaseOrder", "data": { "Model": { "FNoSuch": 1, "FSupplierId": { "FNumber": "V" }, "FPurchaseOrgId": { "FNumber": "100" }, "FPOOrderEntry": [{ "FMaterialId": { "FNumber": "M" }, "FQty": 1 }] } } })).await;
    let id = r["Result"]["Id"].as_i64().unwrap();
    assert!(sim.with(|s| s.purchase_orders.iter().any(|d| d["FID"] == id && d.get("FNoSuch").is_none())));
}

/// A marker lookup examines the matching document, not all of them: creating
/// thousands of purchase orders stays linear.
#[tokio::test]
async fn marker_lookups_use_the_index() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let models: Vec<Value> = (0..3_000)
        .map(|i| json!({ "FSupplierId": { "FNumber": "VEN01" }, "FPurchaseOrgId": { "FNumber": "100" }, "F_DAIFA_PoNo": format!("PO-{i}"),
                         "FPOOrderEntry": [{ "FMaterialId": { "FNumber": "MAT00001" }, "FQty": 1 }] }))
        .collect();
    let r = call(
        &sim,
        "DynamicFormService.BatchSave",
        json!({ "formid": "PUR_PurchaseOrder", "data": { "Model": models } }),
    )
    .await;
    assert!(status(&r).0);
    let before = sim.with(|s| s.rows_examined);
    let rows = query(
        &sim,
        json!({ "FormId": "PUR_PurchaseOrder", "FieldKeys": "FBillNo", "FilterString": "F_DAIFA_PoNo = 'po-2999'" }),
    )
    .await;
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(sim.with(|s| s.rows_examined) - before, 1, "one candidate from the index");
}

/// Paging sales orders by `FID >` seeks past the pages already read, as
/// the primary key does on a real server, and still filters and orders the
/// rest: a scan of 10,000 orders in pages stays linear.
#[tokio::test]
async fn fid_paging_seeks_past_earlier_orders() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(50);
    let cut = fids[39];
    let before = sim.with(|s| s.rows_examined);
    let filter = format!("FID > {cut} AND FBillNo > ''");
    let rows = query(
        &sim,
        json!({ "FormId": "SAL_SaleOrder", "FieldKeys": "FID", "FilterString": filter, "OrderString": "FID" }),
    )
    .await;
    let got: Vec<i64> = rows.as_array().unwrap().iter().map(|r| r[0].as_i64().unwrap()).collect();
    assert_eq!(got, fids[40..].to_vec(), "every order after the cut, in order");
    assert_eq!(sim.with(|s| s.rows_examined) - before, 10, "only the orders past the cut are examined");
    // `>=` includes the bound; a bound on another field seeks nothing.
    let rows =
        query(&sim, json!({ "FormId": "SAL_SaleOrder", "FieldKeys": "FID", "FilterString": format!("FID >= {cut}") }))
            .await;
    assert_eq!(rows.as_array().unwrap().len(), 11);
    let before = sim.with(|s| s.rows_examined);
    query(&sim, json!({ "FormId": "SAL_SaleOrder", "FieldKeys": "FID", "FilterString": "FBillNo > ''" })).await;
    assert_eq!(sim.with(|s| s.rows_examined) - before, 50);
}

/// The second company: our purchase order becomes the supplier's sales
/// order (Save / Submit / Audit, our PO number in its custom field), its
/// warehouse ships with a tracking number, and a material it does not know
/// is refused.
#[tokio::test]
async fn a_supplier_running_kingdee() {
    let sim = KingdeeSim::start(KingdeeSimConfig::supplier_company(["HZ-1001".to_string(), "HZ-1002".to_string()]), 0)
        .await
        .unwrap();
    let so = |material: &str| {
        json!({ "formid": "SAL_SaleOrder", "data": { "Model": {
            "FBillTypeID": { "FNUMBER": "XSDD01_SYS" }, "FCustId": { "FNumber": "DAIFA" }, "FSaleOrgId": { "FNumber": "100" },
            "F_SUP_CustPoNo": "PO-XSDD1-HZ", "FLinkMan": "张三", "FLinkPhone": "13800000000", "FReceiveAddress": "浙江省杭州市西湖区文三路1号",
            "FSaleOrderEntry": [{ "FMaterialId": { "FNumber": material }, "FQty": 2, "FTaxPrice": 10.5 }] } } })
    };
    let r = call(&sim, "DynamicFormService.Save", so("NOPE-1")).await;
    let (ok, code, msg) = status(&r);
    assert!(!ok && code == 11 && msg.contains("NOPE-1"), "{r}");
    let r = call(&sim, "DynamicFormService.Save", so("HZ-1001")).await;
    assert!(status(&r).0, "{r}");
    let number = r["Result"]["Number"].as_str().unwrap().to_string();
    for op in ["Submit", "Audit"] {
        let r = call(
            &sim,
            &format!("DynamicFormService.{op}"),
            json!({ "formid": "SAL_SaleOrder", "data": { "Numbers": [number] } }),
        )
        .await;
        assert!(status(&r).0, "{op}: {r}");
    }
    let found = query(&sim, json!({ "FormId": "SAL_SaleOrder", "FieldKeys": "FBillNo,FDocumentStatus", "FilterString": "F_SUP_CustPoNo = 'PO-XSDD1-HZ'" })).await;
    assert_eq!(found, json!([[number, "C"]]));

    let out = sim.ship_sale_order(&number, "SF", "SF100200300").unwrap();
    let rows = query(
        &sim,
        json!({ "FormId": "SAL_OUTSTOCK", "FieldKeys": "FBillNo,FCarriageNO,FSoorDerno,FRealQty,FDocumentStatus",
        "FilterString": format!("FSoorDerno = '{number}'") }),
    )
    .await;
    assert_eq!(rows, json!([[out, "SF100200300", number, 2.0, "C"]]));
    assert!(sim.ship_sale_order(&number, "SF", "SF-again").is_err(), "shipped whole already");
    // Our credentials are not the supplier's.
    let ours = KingdeeSimConfig::default().app;
    let r = call_as(
        &sim,
        &ours,
        "DynamicFormService.ExecuteBillQuery",
        json!({ "data": { "FormId": "SAL_SaleOrder", "FieldKeys": "FID" } }),
    )
    .await;
    assert_eq!(query_error(&r).0, 1);
}

/// What an attacker's probe found (each took the simulator down, hung it
/// or let it accept what K3Cloud refuses): answered in JSON now, and the
/// server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_answered_and_the_server_keeps_serving() {
    let sim = KingdeeSim::start(KingdeeSimConfig::default(), 0).await.unwrap();
    let fids = sim.generate(20);
    let q = |filter: Value| json!({ "FormId": "SAL_SaleOrder", "FieldKeys": "FID", "FilterString": filter });
    let alive = || async { query(&sim, q(json!(format!("FID = {}", fids[0])))).await == json!([[fids[0]]]) };

    // Pathological filters: bounded, answered in JSON, fast.
    let stamp = sim.with(|s| s.sale_orders[0].modify_date[..19].to_string());
    let t = std::time::Instant::now();
    for filter in [
        format!("FModifyDate >= '{stamp}.a中'"),
        format!("{}FID = 1{}", "(".repeat(400), ")".repeat(400)),
        format!("{}FID = 1", "NOT ".repeat(1000)),
        format!("FReceiveAddress LIKE '{}x'", "%".repeat(40)),
        format!("FBillNo IN ({})", (0..10_000).map(|i| format!("'{i}'")).collect::<Vec<_>>().join(",")),
        "FID = 1.2.3".to_string(),
    ] {
        let r = query(&sim, q(json!(filter))).await;
        assert!(r.is_array(), "{r}");
    }
    assert!(t.elapsed() < std::time::Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(alive().await);

    // Text compares as text; NULL is unknown (NOT of unknown is unknown).
    for (filter, rows) in [
        (json!("FID = 'NaN'"), 0),
        (json!("FNetOrderBillNo = '1e400'"), 0),
        (json!("NOT (FApproveDate > '2000-01-01') AND FNote IS NULL"), 0),
        (json!(format!("FBillNo = 'XSDD{:08}   '", fids[1])), 1),
        (json!("FBillNo LIKE 'XSDD[0-9]%'"), 20),
    ] {
        let r = query(&sim, q(filter.clone())).await;
        assert_eq!(r.as_array().map(Vec::len), Some(rows), "{filter}: {r}");
    }
    let r = query(&sim, json!({ "FormId": "SAL_SaleOrder", "FieldKeys": "FCustId.FNoSuchProp" })).await;
    assert_eq!(query_error(&r).0, 9);
    let r =
        query(&sim, json!({ "FormId": "SAL_SaleOrder", "FieldKeys": "FID", "OrderString": "FID desc garbage" })).await;
    assert_eq!(query_error(&r).0, 8);

    // Purchase orders with a mixed-type column sort without a panic.
    let po = |i: i64, note: Value| {
        json!({ "FSupplierId": { "FNumber": "V" }, "FPurchaseOrgId": { "FNumber": "100" }, "FNote": note,
        "FPOOrderEntry": [{ "FMaterialId": { "FNumber": "M" }, "FQty": i }] })
    };
    let models: Vec<Value> = (1..60)
        .map(|i| {
            po(
                i,
                match i % 3 {
                    0 => json!(i),
                    1 => json!(format!("n{i}")),
                    _ => Value::Null,
                },
            )
        })
        .collect();
    call(&sim, "DynamicFormService.BatchSave", json!({ "formid": "PUR_PurchaseOrder", "data": { "Model": models } }))
        .await;
    let r = query(&sim, json!({ "FormId": "PUR_PurchaseOrder", "FieldKeys": "FID", "OrderString": "FNote" })).await;
    assert_eq!(r.as_array().map(Vec::len), Some(59), "{r}");

    // The same document twice in one Delete: deleted once, nothing else.
    let before = sim.with(|s| s.purchase_orders.len());
    let first = sim.with(|s| s.purchase_orders[0]["FBillNo"].as_str().unwrap().to_string());
    let r = call(
        &sim,
        "DynamicFormService.Delete",
        json!({ "formid": "PUR_PurchaseOrder", "data": { "Numbers": [first, first] } }),
    )
    .await;
    assert!(status(&r).0, "{r}");
    assert_eq!(sim.with(|s| s.purchase_orders.len()), before - 1);
    let last = sim.with(|s| s.purchase_orders.last().unwrap()["FBillNo"].as_str().unwrap().to_string());
    call(
        &sim,
        "DynamicFormService.Delete",
        json!({ "formid": "PUR_PurchaseOrder", "data": { "Numbers": [last, last] } }),
    )
    .await;
    assert!(alive().await, "still serving after deleting the last document twice");

    // Status, dates and links are the server's: a Model cannot set them.
    let id = sim.with(|s| s.purchase_orders[0]["FID"].clone());
    let r = call(&sim, "DynamicFormService.Save", json!({ "formid": "PUR_PurchaseOrder", "data": { "Model": { "FID": id, "FDocumentStatus": "C", "FApproveDate": "1999-01-01" } } })).await;
    assert!(status(&r).0);
    assert_eq!(sim.with(|s| s.purchase_orders[0]["FDocumentStatus"].clone()), "A");
    let r = call(
        &sim,
        "DynamicFormService.Save",
        json!({ "formid": "PUR_PurchaseOrder", "data": { "Model": { "FID": "abc" } } }),
    )
    .await;
    assert_eq!(status(&r).1, 8);
    let dup = sim.with(|s| s.purchase_orders[0]["FBillNo"].clone());
    let mut m = po(1, json!("x"));
    m["FBillNo"] = dup;
    let r =
        call(&sim, "DynamicFormService.Save", json!({ "formid": "PUR_PurchaseOrder", "data": { "Model": m } })).await;
    assert!(status(&r).2.contains("重复"), "{r}");

    // Pushed quantities cannot be forged back: no negative quantity, no
    // hand-written link, no half-done push behind a failure.
    let so = |fid: i64| format!("XSDD{fid:08}");
    sim.with(|s| s.sale_orders[3].status = "B".into());
    let r = call(&sim, "DynamicFormService.Push", json!({ "formid": "SAL_SaleOrder", "data": { "Numbers": [so(fids[2]), so(fids[3])], "TargetFormId": "SAL_OUTSTOCK", "IsEnableDefaultRule": "true" } })).await;
    assert!(!status(&r).0);
    assert_eq!(sim.with(|s| s.outstocks.len()), 0, "all or nothing");
    let r = call(
        &sim,
        "DynamicFormService.Push",
        json!({ "formid": "SAL_SaleOrder", "data": { "Numbers": [so(fids[2])], "RuleId": "NoSuchRule" } }),
    )
    .await;
    assert_eq!(status(&r).1, 11);
    let entry = sim.with(|s| s.sale_orders[2].lines[0].entry_id);
    let r = call(
        &sim,
        "DynamicFormService.Push",
        json!({ "formid": "SAL_SaleOrder", "data": { "EntryIds": [entry], "RuleId": "SaleOrder-OutStock" } }),
    )
    .await;
    assert!(status(&r).0, "{r}");
    let out = sim.with(|s| s.outstocks[0].clone());
    assert_eq!(out["FEntity"].as_array().unwrap().len(), 1, "EntryIds as an array is honoured");
    let e = out["FEntity"][0]["FEntryID"].clone();
    let r = call(&sim, "DynamicFormService.Save", json!({ "formid": "SAL_OUTSTOCK", "data": { "IsDeleteEntry": "false", "Model": { "FID": out["FID"], "FEntity": [{ "FEntryID": e, "FRealQty": -100 }] } } })).await;
    assert_eq!(status(&r).1, 11, "{r}");
    let forged = json!({ "FCustomerID": { "FNumber": "C" }, "FEntity": [{ "FMaterialID": { "FNumber": "M" }, "FRealQty": 1,
        "FEntity_Link": [{ "FEntity_Link_FSBillId": fids[2], "FEntity_Link_FSId": entry }] }] });
    let r =
        call(&sim, "DynamicFormService.Save", json!({ "formid": "SAL_OUTSTOCK", "data": { "Model": forged } })).await;
    let forged_no = r["Result"]["Number"].as_str().unwrap().to_string();
    call(&sim, "DynamicFormService.Delete", json!({ "formid": "SAL_OUTSTOCK", "data": { "Numbers": [forged_no] } }))
        .await;
    let booked = sim.with(|s| s.sale_orders[2].lines[0].stock_out_qty.normalize());
    assert_eq!(booked.to_string(), sim.with(|s| s.sale_orders[2].lines[0].qty.clone()), "the real push stays booked");

    // A draft saved again becomes a created document.
    let r = call(
        &sim,
        "DynamicFormService.Draft",
        json!({ "formid": "SAL_SaleOrder", "data": { "Model": { "FNote": "d" } } }),
    )
    .await;
    let id = r["Result"]["Id"].clone();
    let r = call(
        &sim,
        "DynamicFormService.Save",
        json!({ "formid": "SAL_SaleOrder", "data": { "Model": { "FID": id, "FNote": "x" } } }),
    )
    .await;
    assert!(status(&r).0, "{r}");
    assert_eq!(sim.with(|s| s.sale_orders.last().unwrap().status.clone()), "A");
    assert!(alive().await);
}
