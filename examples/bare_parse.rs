//! The benchmark's baseline: a bare axum handler that only parses the
//! Alertmanager payload (same parser as rollbackd) and answers 200, with no
//! auth, no journal, no worker. `bench/webhook.sh` runs it beside rollbackd.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;

async fn parse_only(body: Bytes) -> StatusCode {
    match rollbackd::core::parse::parse_notification(&body) {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

#[tokio::main]
async fn main() {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
    println!("listening addr={}", listener.local_addr().expect("addr"));
    let app = Router::new().route("/webhook", post(parse_only));
    axum::serve(listener, app).await.expect("serve");
}
