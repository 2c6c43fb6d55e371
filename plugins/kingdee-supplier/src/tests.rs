//! The signature against the reference vector; the manifest against the code.

use daifa_plugin_sdk::testing::assert_manifest_declares;

use super::*;

#[test]
fn the_manifest_declares_every_key() {
    assert_manifest_declares(include_str!("../manifest.toml"), Config::KEYS);
}

/// The vector in shared/reference/kingdee-k3cloud-webapi.md, computed with
/// the official SDK's code.
#[test]
fn signs_as_the_official_sdk_does() {
    let k = K3 {
        server_url: String::new(),
        acct_id: "5db25ac8d2b819".into(),
        user_name: "webapi".into(),
        app_id: "204399_72epSbtEQMC92Vwt2d3LRa9LRqSc1tqJ".into(),
        app_secret: "fb7d46647ac346dbb5fcd45b65512a45".into(),
        lcid: "2052".into(),
        org_num: "0".into(),
    };
    let url = "http://erp.example.com/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc";
    assert_eq!(k3::decode_app_secret("72epSbtEQMC92Vwt2d3LRa9LRqSc1tqJ"), "31ecfd13effe724e7e78fc17f8f94b66");
    let h: std::collections::HashMap<_, _> = k.headers(url, 1_700_000_000, "1700000000").into_iter().collect();
    assert_eq!(
        h["X-Api-Signature"],
        "ZTJhY2RiZTYxNmFhZDMxN2MyZmU2ZTMxN2I0ZmFjZGE2ZGVlMTgyNTM4YzdkOTNlYzFlNzhmZGU1M2E4YTRmNg=="
    );
    assert_eq!(h["X-Kd-Appdata"], "NWRiMjVhYzhkMmI4MTksd2ViYXBpLDIwNTIsMA==");
    assert_eq!(
        h["X-Kd-Signature"],
        "OWQ2YWVhM2JmOGVlYWEzYjVlZGI0NzM3MjlmYzA4NTkyYjhiMTAwNTgxODk5MmQ5NWIxMzBjZTQxNjk5ZWFiYg=="
    );
}
