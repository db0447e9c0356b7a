//! The admin HTTP API (`[admin] bind`), which `broker ctl` talks to:
//!
//! - `GET /api/v1/stats`: the core's counters and the node's connection count.
//! - `GET /api/v1/cluster`: this node's view of its cluster (members, link
//!   state, routes per origin, forwarding counters), or 404 on a single node.
//! - `POST /api/v1/cluster/leave`: leave the cluster gracefully and stop.
//! - `POST /api/v1/reload`: reread certificates, authentication and
//!   authorization files; `{"reloaded": true}`, or 422 with
//!   `{"reloaded": false, "errors": [...]}` (the failed parts keep their previous state).
//! - `GET /api/v1/bans`: the bans in force; `POST /api/v1/bans` with
//!   `{"kind": "client_id" | "username" | "cidr", "value": ..., "duration_secs"?, "reason"?}`
//!   adds one and closes the live clients it matches; `DELETE /api/v1/bans`
//!   with `{"kind", "value"}` removes one.
//!
//! It listens through the network seam like every other listener. It has no
//! authentication yet, so the configuration refuses a non-loopback address;
//! the management issue grows this into the full REST API.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::seam::{Listener, Stream};
use crate::server::{BanRequest, Server, Unban};

/// The seam's listener as axum sees one.
struct SeamListener(Box<dyn Listener>);

impl axum::serve::Listener for SeamListener {
    type Io = Box<dyn Stream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return (accepted.stream, accepted.peer),
                Err(error) => {
                    // EMFILE and the like: back off rather than spin.
                    tracing::warn!(%error, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Serves the API until the server shuts down.
pub(crate) async fn serve(server: Arc<Server>, listener: Box<dyn Listener>) {
    let mut stop = server.shutting_down();
    let app = Router::new()
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/cluster/leave", post(leave))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/bans", get(list_bans).post(add_ban).delete(remove_ban))
        .with_state(server);
    let served = axum::serve(SeamListener(listener), app).with_graceful_shutdown(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    if let Err(error) = served.await {
        tracing::warn!(%error, "admin API stopped");
    }
}

async fn stats(State(server): State<Arc<Server>>) -> Response {
    Json(serde_json::json!({
        "node": server.node_name(),
        "connections": server.connection_count(),
        "counters": server.counters(),
        "limits": server.limit_stats(),
    }))
    .into_response()
}

async fn cluster(State(server): State<Arc<Server>>) -> Response {
    match server.cluster_status() {
        Some(status) => Json(status).into_response(),
        None => (StatusCode::NOT_FOUND, "this node is not a cluster member\n").into_response(),
    }
}

async fn leave(State(server): State<Arc<Server>>) -> Response {
    if server.cluster_status().is_none() {
        return (StatusCode::NOT_FOUND, "this node is not a cluster member\n").into_response();
    }
    server.request_stop();
    (StatusCode::ACCEPTED, "leaving the cluster and stopping\n").into_response()
}

async fn list_bans(State(server): State<Arc<Server>>) -> Response {
    Json(server.bans()).into_response()
}

async fn add_ban(State(server): State<Arc<Server>>, Json(request): Json<BanRequest>) -> Response {
    match server.ban(request) {
        Ok((ban, closed)) => {
            (StatusCode::CREATED, Json(serde_json::json!({ "ban": ban, "closed": closed }))).into_response()
        }
        Err(error) => (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    }
}

async fn remove_ban(State(server): State<Arc<Server>>, Json(unban): Json<Unban>) -> Response {
    match server.unban(&unban) {
        Ok(true) => (StatusCode::OK, "ban removed\n").into_response(),
        Ok(false) => (StatusCode::NOT_FOUND, "no such ban\n").into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    }
}

async fn reload(State(server): State<Arc<Server>>) -> Response {
    match server.reload() {
        Ok(()) => Json(serde_json::json!({ "reloaded": true, "errors": [] })).into_response(),
        Err(errors) => {
            let body = Json(serde_json::json!({ "reloaded": false, "errors": errors }));
            (StatusCode::UNPROCESSABLE_ENTITY, body).into_response()
        }
    }
}
