//! The WebSocket listener: an HTTP upgrade on the configured path with the
//! subprotocol `mqtt` (or `mqttv3.1` / `mqttv3.1.1`), then MQTT in binary
//! frames. `ws_stream::WsStream` turns the frames back into a byte stream, so the
//! connection code sees WebSocket no differently from TCP: several packets in
//! one frame and one packet across frames both work ([MQTT-6.0.0-2]).

use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use ws_stream::WsStream;

use super::forwarded;
use crate::config::WsOptions;
use crate::seam::Accepted;

/// Subprotocols accepted, in order of preference ([MQTT-6.0.0-3]: "mqtt").
const SUBPROTOCOLS: [&str; 3] = ["mqtt", "mqttv3.1.1", "mqttv3.1"];
/// Room in a frame beyond one packet of the largest size the broker takes:
/// what a client may pack beside it (acknowledgements, a ping).
const FRAME_SLACK_BYTES: usize = 64 * 1024;

/// The frame and message bounds for a broker that takes MQTT packets of up to
/// `max_packet_size` bytes. tungstenite's defaults (16 MiB frames, 64 MiB
/// messages) would let every client make the broker buffer that much before
/// the MQTT decoder, which checks the packet size, sees a byte.
pub(super) fn config(max_packet_size: u32) -> WebSocketConfig {
    let limit = usize::try_from(max_packet_size).unwrap_or(usize::MAX).saturating_add(FRAME_SLACK_BYTES);
    WebSocketConfig::default().max_frame_size(Some(limit)).max_message_size(Some(limit))
}

/// Runs the HTTP upgrade on an accepted stream (plain, or TLS for wss); the
/// result carries MQTT bytes, and the client's address when a trusted proxy
/// forwarded it (`proxy_address_header`). `config` bounds frames and
/// messages ([`config`]).
pub(super) async fn upgrade(
    accepted: Accepted,
    options: &WsOptions,
    config: WebSocketConfig,
) -> Result<Accepted, String> {
    let mut peer = accepted.peer;
    // The callback's error type is tungstenite's (an HTTP response), not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response| {
        if let Some(header) = &options.proxy_address_header {
            let values = request.headers().get_all(header.as_str()).iter().filter_map(|v| v.to_str().ok());
            peer = forwarded::client_addr(peer, values, &options.trusted_proxies);
        }
        choose(request, response, &options.path)
    };
    let ws = tokio_tungstenite::accept_hdr_async_with_config(accepted.stream, callback, Some(config))
        .await
        .map_err(|e| format!("WebSocket upgrade failed: {e}"))?;
    if peer != accepted.peer {
        tracing::debug!(proxy = %accepted.peer, client = %peer, "client address forwarded by a trusted proxy");
    }
    Ok(Accepted { stream: Box::new(WsStream::new(ws)), peer })
}

/// Checks the path and picks the subprotocol of the upgrade.
#[allow(clippy::result_large_err)]
fn choose(request: &Request, mut response: Response, path: &str) -> Result<Response, ErrorResponse> {
    if request.uri().path() != path {
        let mut refusal = ErrorResponse::new(Some(format!("MQTT is served on {path}\n")));
        *refusal.status_mut() = StatusCode::NOT_FOUND;
        return Err(refusal);
    }
    let offered: Vec<&str> = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(str::trim))
        .collect();
    // A client that names no subprotocol is served anyway, as browsers' and
    // most libraries' MQTT clients always send one; one that offers only others is refused.
    if !offered.is_empty() {
        let Some(chosen) = SUBPROTOCOLS.iter().find(|p| offered.contains(p)) else {
            let mut refusal = ErrorResponse::new(Some("subprotocol mqtt required\n".to_string()));
            *refusal.status_mut() = StatusCode::BAD_REQUEST;
            return Err(refusal);
        };
        response.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(chosen));
    }
    Ok(response)
}
