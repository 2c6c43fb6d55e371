//! The demo's suppliers and the three protocols they speak: most
//! warehouses on the JSON `rest-json` adapter (one simulator each), GZ an
//! EDI X12 partner behind a drop box (`edi-x12`), CD a company running its
//! own Kingdee K3Cloud (`kingdee-supplier`). Each is deployed and connected
//! through the admin API as an operator would, and each ships on cue.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use reqwest::Method;
use serde_json::json;

use crate::api::client::AdminClient;
use crate::plugins::{Manifest, PluginPackage};
use crate::sim::edi_supplier::{EdiSim, EdiSimConfig};
use crate::sim::kingdee::{KingdeeSim, KingdeeSimConfig};
use crate::sim::rest_supplier::{SupplierSim, SupplierSimConfig};

/// The supplier on EDI X12 and the one on Kingdee.
pub const EDI_SUPPLIER: &str = "GZ";
pub const KINGDEE_SUPPLIER: &str = "CD";

/// Every simulated supplier of the demo.
pub struct Partners {
    pub rest: BTreeMap<String, SupplierSim>,
    /// The EDI partner and the supplier on its own K3Cloud (`None` with
    /// `json_only`: they are JSON warehouses then).
    pub others: Option<(EdiSim, KingdeeSim)>,
}

/// A bundled plugin: its component from `plugin_dir`, its manifest from
/// the plugin's folder beside rest-json's.
pub fn package(plugin_dir: &Path, plugins_root: &Path, folder: &str) -> anyhow::Result<PluginPackage> {
    let wasm = plugin_dir.join(format!("{}.wasm", folder.replace('-', "_")));
    let component = std::fs::read(&wasm)
        .with_context(|| format!("reading {} (build the plugins first: scripts/demo does it)", wasm.display()))?;
    let path = plugins_root.join(folder).join("manifest.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(PluginPackage::pack(Manifest::from_toml(&text)?, component))
}

impl Partners {
    /// Starts a simulator per supplier in `ids` (each with its own token;
    /// the JSON ones with some SKUs short and some unknown).
    pub async fn start(ids: &[String], latency_ms: u64, json_only: bool) -> anyhow::Result<Partners> {
        let mut rest = BTreeMap::new();
        for id in ids.iter().filter(|id| json_only || (*id != EDI_SUPPLIER && *id != KINGDEE_SUPPLIER)) {
            let mut cfg = SupplierSimConfig { token: Some(format!("token-{id}")), ..SupplierSimConfig::default() };
            for sku in 0..40 {
                cfg.stock.insert(format!("SKU-{sku:05}"), 2);
            }
            cfg.unknown_prefix = "SKU-0099".into();
            let sim = SupplierSim::start(cfg, 0).await?;
            sim.set_latency(latency_ms);
            rest.insert(id.clone(), sim);
        }
        if json_only {
            return Ok(Partners { rest, others: None });
        }
        let edi = EdiSim::start(
            EdiSimConfig {
                token: Some(format!("token-{EDI_SUPPLIER}")),
                unknown_prefix: "SKU-0099".into(),
                backorder_every: 0,
                ..EdiSimConfig::default()
            },
            0,
        )
        .await?;
        // Its material master takes any number: the demo's SKUs are its own.
        let kingdee = KingdeeSim::start(KingdeeSimConfig::supplier_company(Vec::<String>::new()), 0).await?;
        Ok(Partners { rest, others: Some((edi, kingdee)) })
    }

    /// The other protocols' simulators, for the demo's story.
    pub fn others(&self) -> String {
        match &self.others {
            Some((edi, k3)) => format!(
                ", {EDI_SUPPLIER} on EDI X12 (drop box {}), {KINGDEE_SUPPLIER} on its own K3Cloud ({})",
                edi.base_url(),
                k3.server_url()
            ),
            None => String::new(),
        }
    }

    /// Installs edi-x12 and kingdee-supplier (rest-json is the caller's) and
    /// connects every supplier with its own endpoint and secrets.
    pub async fn connect(
        &self,
        client: &AdminClient,
        edi: &PluginPackage,
        kingdee: &PluginPackage,
    ) -> anyhow::Result<()> {
        let placeholder = |keys: &[&str]| -> BTreeMap<String, String> {
            keys.iter()
                .map(|k| (k.to_string(), if k.ends_with("url") { "http://127.0.0.1:9/" } else { "-" }.to_string()))
                .collect()
        };
        for (id, sim) in &self.rest {
            let body = json!({
                "plugin": "rest-json",
                "config": { "base_url": sim.base_url() },
                "secrets": { "api_token": format!("token-{id}") },
                "poll_interval_ms": 500,
                "max_in_flight": 64,
            });
            client.call(Method::PUT, &format!("/suppliers/{id}/connection"), Some(&body)).await?;
        }
        let Some((edi_sim, k3)) = &self.others else { return Ok(()) };
        client.install(edi, &placeholder(&["base_url", "receiver_id"]), true).await?;
        client
            .install(
                kingdee,
                &placeholder(&["server_url", "acct_id", "user_name", "app_id", "app_secret", "customer"]),
                true,
            )
            .await?;
        let body = json!({
            "plugin": "edi-x12",
            "config": { "base_url": edi_sim.base_url(), "receiver_id": "PARTNER" },
            "secrets": { "api_token": format!("token-{EDI_SUPPLIER}") },
            "poll_interval_ms": 500,
            // The adapter's manifest holds it to one submit at a time
            // (`calls_per_connection`: control numbers from a kv counter).
            "max_in_flight": 16,
        });
        client.call(Method::PUT, &format!("/suppliers/{EDI_SUPPLIER}/connection"), Some(&body)).await?;
        let app = k3.credentials();
        let body = json!({
            "plugin": "kingdee-supplier",
            "config": {
                "server_url": k3.server_url(), "acct_id": app.acct_id, "user_name": app.user_name,
                "app_id": app.app_id, "customer": "DAIFA",
            },
            "secrets": { "app_secret": app.app_secret },
            "poll_interval_ms": 500,
            "max_in_flight": 8,
        });
        client.call(Method::PUT, &format!("/suppliers/{KINGDEE_SUPPLIER}/connection"), Some(&body)).await?;
        Ok(())
    }

    /// Every supplier ships what it holds; the number of POs shipped.
    pub fn ship_all(&self) -> usize {
        let mut n: usize = self.rest.values().map(|s| s.ship_all()).sum();
        let Some((edi, k3)) = &self.others else { return n };
        n += edi.ship_all();
        let bills: Vec<String> =
            k3.with(|s| s.sale_orders.iter().filter(|o| o.status == "C").map(|o| o.bill_no.clone()).collect());
        for (i, bill) in bills.iter().enumerate() {
            if k3.ship_sale_order(bill, "SF", &format!("SFK3{i:09}")).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Orders each supplier holds, by supplier id.
    pub fn orders_held(&self) -> BTreeMap<String, usize> {
        let mut out: BTreeMap<String, usize> = self.rest.iter().map(|(id, s)| (id.clone(), s.orders().len())).collect();
        if let Some((edi, k3)) = &self.others {
            out.insert(EDI_SUPPLIER.into(), edi.orders().len());
            out.insert(KINGDEE_SUPPLIER.into(), k3.with(|s| s.sale_orders.len()));
        }
        out
    }

    /// Orders taken twice for one PO (or one idempotency key reused for
    /// another body), over all three protocols.
    pub fn duplicates(&self) -> u64 {
        let rest: u64 = self.rest.values().map(|s| s.key_conflicts()).sum();
        let Some((edi, k3)) = &self.others else { return rest };
        let edi = edi.counts().conflicting_850s;
        let kingdee = k3.with(|s| {
            let mut pos: Vec<String> = s
                .sale_orders
                .iter()
                .filter_map(|o| o.extra.get("F_SUP_CustPoNo").and_then(|v| v.as_str()).map(str::to_string))
                .collect();
            let all = pos.len();
            pos.sort();
            pos.dedup();
            (all - pos.len()) as u64
        });
        rest + edi + kingdee
    }

    /// Which supplier speaks which protocol, for the summary.
    pub fn protocols(&self) -> serde_json::Value {
        match self.others {
            Some(_) => json!({
                "rest-json": self.rest.keys().collect::<Vec<_>>(),
                "edi-x12": [EDI_SUPPLIER],
                "kingdee-supplier": [KINGDEE_SUPPLIER],
            }),
            None => json!({ "rest-json": self.rest.keys().collect::<Vec<_>>() }),
        }
    }
}
