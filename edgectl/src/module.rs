//! Modules by content: a `.wasm` file is named by its sha256 and uploaded only when the controller lacks it.

use anyhow::{anyhow, Context, Result};
use sha2::{Digest, Sha256};

use crate::client::{Client, Refused};
use crate::progress::Progress;

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads a module file.
pub fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Uploads `bytes` (read from `path`) unless the controller has them, with a progress bar on a terminal; returns
/// their sha256.
pub async fn ensure_uploaded(client: &Client, path: &str, bytes: Vec<u8>) -> Result<String> {
    let sha = sha256(&bytes);
    // Content-addressed: skip the upload when the controller already has these bytes.
    if client.module(&sha).await?.is_none() {
        let size = bytes.len();
        let name = std::path::Path::new(path).file_name().map_or(path.into(), |n| n.to_string_lossy());
        let progress = Progress::bytes(size as u64, format!("uploading {name}"));
        let uploaded = client.upload_module(bytes, progress.clone()).await;
        progress.finish();
        uploaded.map_err(|e| match e.downcast_ref::<Refused>() {
            Some(r) if r.status == reqwest::StatusCode::PAYLOAD_TOO_LARGE => {
                anyhow!("{path} is {size} bytes, over the controller's module size limit")
            }
            Some(r) if r.message.starts_with("not a WebAssembly module") => anyhow!("{path} is {}", r.message),
            Some(r) => anyhow!("{path} was refused: {}", r.message),
            None => e,
        })?;
    }
    Ok(sha)
}
