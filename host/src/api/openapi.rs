//! The OpenAPI 3.1 document of the admin API, generated from the handlers'
//! own `#[utoipa::path]` annotations (method, path, parameters, bodies,
//! answers) and doc comments, served at `GET /api/v1/openapi.json`. A test
//! checks that every route the router serves is in it and the other way
//! round, so the document cannot drift from the code.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{access, dispatch, orders, plugins, routing};

/// Every refusal: `{"error": "...", "kind": "..."}`.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used: answers are built by `ApiError`.
pub(crate) struct ErrorBody {
    /// What was wrong, naming the field or value.
    error: String,
    /// `bad-request`, `unauthorized`, `forbidden`, `not-found`, `invalid`, `conflict`, `too-large`,
    /// `unsupported-media-type`, `malformed-json`, `unavailable`, `internal`.
    kind: String,
}

/// The bearer token every operation needs.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("`daifa_<id>_<secret>` (daifa token create) or the admin token of daifa.toml"))
            .build();
        doc.components.get_or_insert_with(Default::default).add_security_scheme("token", SecurityScheme::Http(scheme));
    }
}

/// The admin API's document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "daifa admin API",
        description = "Orders, routing, dispatch, plugins and access of a daifa host. Every operation needs \
                       `Authorization: Bearer <token>`; a viewer reads, an operator also acts on orders, routing, \
                       dispatch and connections, a plugin-deployer on plugins, an admin on tokens.",
        license(name = "Apache-2.0")
    ),
    servers((url = "/api/v1")),
    security(("token" = [])),
    modifiers(&BearerToken),
    components(schemas(ErrorBody)),
    tags(
        (name = "orders", description = "Sales orders in: intake, search, fixes, state changes"),
        (name = "routing", description = "Catalog, policy, decisions and their explanations, supplier performance"),
        (name = "dispatch", description = "Supplier connections, purchase orders, jobs, dead letters, circuits"),
        (name = "plugins", description = "Supplier adapters: install, activate, canary, roll back, disable"),
        (name = "access", description = "Tokens, the audit trail, alert history"),
    ),
    paths(
        orders::intake, orders::list, orders::stats, orders::one, orders::fix, orders::transition,
        plugins::list, plugins::validate, plugins::install, plugins::activate, plugins::rollback, plugins::disable, plugins::remove, plugins::start_canary, plugins::stop_canary, plugins::logs, plugins::invoke,
        dispatch::list_connections, dispatch::get_connection, dispatch::put_connection, dispatch::delete_connection, dispatch::resume, dispatch::list_pos, dispatch::get_po, dispatch::jobs, dispatch::dead_letters, dispatch::retry, dispatch::discard, dispatch::circuits, dispatch::operator_events,
        routing::explain, routing::reroute, routing::policy, routing::policies, routing::put_policy, routing::what_if, routing::run, routing::put_catalog, routing::suppliers, routing::patch_supplier, routing::stock, routing::performance, routing::events, routing::circuit,
        access::list_tokens, access::create_token, access::revoke_token, access::audit, access::alerts,
    )
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
