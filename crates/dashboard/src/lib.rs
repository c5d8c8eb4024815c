//! The live risk dashboard a node serves over HTTP for risk officers and
//! auditors: one static page (inline JS and SVG, no external assets) and
//! JSON endpoints whose figures are the `AuditService`'s own answers, read
//! at one height and tagged with that height and its app hash, so every
//! number on the page can be proven with `clearnode audit verify`.
//!
//! Endpoints: `GET /` (the page), `GET /api/snapshot` (`?height=H` for a
//! past height, `?after=H` to wait for the next block, `?prove=true` for
//! ics23 proofs), `GET /api/series?blocks=N` (the last N heights).
//!
//! Must never depend on: the engine's mutable state or the ABCI connection;
//! it reads committed state only, like the gRPC audit service.
#![forbid(unsafe_code)]

mod figures;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clearnode_store::Store;
use tonic::Code;

pub use figures::{Figures, Snapshot, SERIES_BLOCKS_MAX};

/// The page: HTML, CSS and JS in one file, so it works with no internet.
const PAGE_HTML: &str = include_str!("page.html");

/// Heights a series answers when the request does not say.
const SERIES_BLOCKS_DEFAULT: u64 = 120;

/// Why the dashboard stopped.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The HTTP server failed.
    #[error("dashboard HTTP server: {0}")]
    Serve(#[from] std::io::Error),
}

/// The dashboard's routes over `store`; `verify_command` is printed under
/// the figures (see [`Figures::new`]).
pub fn router(store: Store, verify_command: String) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/snapshot", get(snapshot))
        .route("/api/series", get(series))
        .with_state(Figures::new(store, verify_command))
}

/// Serves the dashboard on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    verify_command: String,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DashboardError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "dashboard listening");
    }
    axum::serve(listener, router(store, verify_command))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE_HTML))
}

/// `/api/snapshot`: `height=H` for a past height (default: the latest),
/// `after=H` to answer once a block above H is committed (long poll),
/// `prove=true` to include ics23 proofs.
async fn snapshot(State(figures): State<Figures>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let (height, after, prove) = match (
        number_param(&query, "height"),
        number_param(&query, "after"),
    ) {
        (Ok(height), Ok(after)) => (height, after, param(&query, "prove") == Some("true")),
        (Err(message), _) | (_, Err(message)) => return bad_request(&message),
    };
    if let Some(after) = after {
        if let Err(status) = figures.wait_for_block_after(after).await {
            return error_response(&status);
        }
    }
    match figures.snapshot(height, prove).await {
        Ok(snapshot) => json_response(&snapshot),
        Err(status) => error_response(&status),
    }
}

/// `/api/series`: `blocks=N` heights ending at the latest.
async fn series(State(figures): State<Figures>, RawQuery(query): RawQuery) -> Response {
    let blocks = match number_param(&query.unwrap_or_default(), "blocks") {
        Ok(blocks) => blocks.unwrap_or(SERIES_BLOCKS_DEFAULT),
        Err(message) => return bad_request(&message),
    };
    match figures.series(blocks).await {
        Ok(points) => json_response(&serde_json::json!({ "points": points })),
        Err(status) => error_response(&status),
    }
}

/// The value of `name` in a query string (values here need no decoding).
fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn number_param(query: &str, name: &str) -> Result<Option<u64>, String> {
    param(query, name)
        .map(|value| {
            value
                .parse()
                .map_err(|_| format!("{name} must be a block height, not {value:?}"))
        })
        .transpose()
}

fn bad_request(message: &str) -> Response {
    error_response(&tonic::Status::invalid_argument(message))
}

fn json_response(value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// An audit service error as an HTTP answer with a JSON body.
fn error_response(status: &tonic::Status) -> Response {
    let code = match status.code() {
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = serde_json::json!({ "error": status.message() }).to_string();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_found_by_name_and_numbers_checked() {
        let query = "after=12&prove=true&blocks=x";
        assert_eq!(param(query, "prove"), Some("true"));
        assert_eq!(param(query, "height"), None);
        assert_eq!(number_param(query, "after"), Ok(Some(12)));
        assert_eq!(number_param(query, "height"), Ok(None));
        assert!(number_param(query, "blocks").is_err());
    }
}
