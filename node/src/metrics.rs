//! A minimal Prometheus endpoint: every GET answers the text exposition.

use std::sync::Arc;

use clearnode_abci::AppMetrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Largest request head read before answering.
const REQUEST_BYTES_MAX: usize = 8 * 1024;

/// Serves metrics until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<AppMetrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let mut buffer = vec![0u8; REQUEST_BYTES_MAX];
            let _ = stream.read(&mut buffer).await;
            let body = format!("clearnode_up 1\n{}", metrics.render());
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
