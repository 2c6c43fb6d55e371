use std::collections::BTreeMap;

use crate::AdapterError;
use crate::config::Json;
use crate::testing::MockHost;

crate::config_schema! {
    /// Test settings.
    struct Settings {
        base_url: String { required, description = "API base URL" },
        token: Option<String> { secret },
        page_size: u32 { default = "100", description = "Events per poll" },
        sandbox: bool { default = "false" },
        limit: Option<u64> {},
        field_map: Json<BTreeMap<String, String>> { default = "{}" },
        region: String {},
    }
}

fn misconfigured(r: Result<Settings, AdapterError>) -> String {
    match r {
        Err(AdapterError::Misconfigured(m)) => m,
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("loaded"),
    }
}

#[test]
fn keys_are_declared_in_order() {
    let names: Vec<&str> = Settings::KEYS.iter().map(|k| k.name).collect();
    assert_eq!(names, ["base_url", "token", "page_size", "sandbox", "limit", "field_map", "region"]);
    assert!(Settings::KEYS[0].required && !Settings::KEYS[0].secret);
    assert_eq!(Settings::KEYS[0].description, "API base URL");
    assert!(Settings::KEYS[1].secret);
    assert_eq!(Settings::KEYS[2].default, Some("100"));
}

#[test]
fn loads_typed_values_with_defaults() {
    let host = MockHost::install();
    host.set_config("base_url", "https://x.example")
        .set_config("token", "")
        .set_config("sandbox", "Yes")
        .set_config("field_map", r#"{"sku":"goodsCode"}"#)
        .set_config("region", "");
    let s = Settings::load().unwrap();
    assert_eq!(s.base_url, "https://x.example");
    assert_eq!(s.token, None, "blank optional → None");
    assert_eq!((s.page_size, s.sandbox, s.limit), (100, true, None));
    assert_eq!(s.field_map.get("sku").map(String::as_str), Some("goodsCode"));
    assert_eq!(s.region, "", "an empty String is a value");
}

#[test]
fn errors_name_the_key_and_hide_secrets() {
    let host = MockHost::install();
    host.set_config("region", "eu");
    assert!(misconfigured(Settings::load()).contains("config key `base_url` is required but not set (API base URL)"));
    host.set_config("base_url", "  ");
    assert!(misconfigured(Settings::load()).contains("`base_url` is required"), "blank counts as unset");

    host.set_config("base_url", "https://x.example").set_config("page_size", "many");
    let m = misconfigured(Settings::load());
    assert!(m.contains("config key `page_size`: expected a whole number from 0 to 4294967295, got `many`"), "{m}");

    host.set_config("page_size", "5").set_config("field_map", "[1]");
    assert!(misconfigured(Settings::load()).contains("config key `field_map`: expected JSON"));

    host.set_config("field_map", "{}").remove_config("region");
    assert_eq!(misconfigured(Settings::load()), "config key `region` is not set");

    crate::config_schema! {
        #[allow(dead_code)]
        struct Secret { pin: u32 { secret } }
    }
    host.set_config("pin", "12ab");
    let m = match Secret::load() {
        Err(AdapterError::Misconfigured(m)) => m,
        _ => panic!("expected misconfigured"),
    };
    assert!(m.contains("`pin`") && !m.contains("12ab"), "{m}");
}
