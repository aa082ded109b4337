//! The pages' own scripts, compiled in like `/static/app.js` (no CDN: the appliance works
//! without internet). Each page loads only its own; all are public, like `app.js`, since a
//! script holds no data.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/static/dashboard.js",
            get(|| script(include_str!("../static/dashboard.js"))),
        )
        .route(
            "/static/namespace.js",
            get(|| script(include_str!("../static/namespace.js"))),
        )
        .route(
            "/static/sparkplug.js",
            get(|| script(include_str!("../static/sparkplug.js"))),
        )
        .route(
            "/static/settings.js",
            get(|| script(include_str!("../static/settings.js"))),
        )
        .route(
            "/static/devices.js",
            get(|| script(include_str!("../static/devices.js"))),
        )
}

/// Revalidated on every load, so an upgrade takes effect at once.
async fn script(text: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
}
