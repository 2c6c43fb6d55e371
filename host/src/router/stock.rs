//! Stock refresh: asks each supplier's plugin (`query-stock`) for the stock
//! of every SKU it offers, in chunks, and records the levels with the time
//! they were confirmed. A supplier with a connection is asked through it
//! (its own config, secrets and kv, as dispatch does); one without, through
//! the plugin its catalog entry names. A plugin that fails costs only its
//! own suppliers' refresh; their last figures stay. The router loop runs a
//! refresh as a task of its own under a deadline, so a slow plugin never
//! holds up routing.

use serde::Serialize;

use super::{Router, RouterError};
use crate::domain::{SupplierId, SupplierSku};
use crate::plugins::Registry;

/// SKUs per `query-stock` call: keeps each call's input and output small.
const CHUNK: usize = 200;

/// What a refresh did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StockRefresh {
    /// Offers whose stock was updated.
    pub updated: usize,
    /// `(supplier, error)` for each supplier whose plugin failed.
    pub failures: Vec<(SupplierId, String)>,
}

impl Router {
    /// Refreshes stock for every enabled supplier from its plugin.
    pub async fn refresh_stock(&self, plugins: &Registry, now: i64) -> Result<StockRefresh, RouterError> {
        let (_, suppliers, catalog) = self.store.load_catalog().await?;
        let mut out = StockRefresh::default();
        for s in suppliers.iter().filter(|s| s.enabled) {
            let skus: Vec<String> =
                catalog.entries().filter(|e| e.supplier == s.id).map(|e| e.supplier_sku.0.clone()).collect();
            if skus.is_empty() {
                continue;
            }
            let bound = match self.store.connection(&s.id).await? {
                Some(c) => crate::dispatch::bind_connection(plugins, &c),
                None => plugins.get(&s.plugin).map_err(|e| format!("plugin `{}`: {e}", s.plugin)),
            };
            let plugin = match bound {
                Ok(p) => p,
                Err(e) => {
                    out.failures.push((s.id.clone(), e));
                    continue;
                }
            };
            let mut levels = Vec::with_capacity(skus.len());
            let mut failed = None;
            for chunk in skus.chunks(CHUNK) {
                match plugin.query_stock(chunk).await {
                    Ok(got) => {
                        levels.extend(got.into_iter().map(|l| (s.id.clone(), SupplierSku(l.supplier_sku), l.available)))
                    }
                    Err(e) => {
                        failed = Some(format!("plugin `{}` query-stock: {e}", s.plugin));
                        break;
                    }
                }
            }
            match failed {
                // Keep the last confirmed figures rather than half a refresh.
                Some(why) => out.failures.push((s.id.clone(), why)),
                None => out.updated += self.store.update_stock(&levels, now).await?,
            }
        }
        self.snap.lock().await.last_stock = now;
        Ok(out)
    }
}
