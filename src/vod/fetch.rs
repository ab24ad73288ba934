//! VOD sources over HTTP: a copy on disk, fetched again only when the server says the
//! file changed.
//!
//! The copy of asset `id` is `{data}/sources/{id}`, beside `{id}.json` with the URL it
//! came from and the validators the server sent (`ETag`, `Last-Modified`). Each ingest
//! asks again with `If-None-Match` and `If-Modified-Since` (RFC 9110 §13.1): a 304
//! keeps the copy untouched, so the asset's fingerprint is the same and it is up to
//! date without a transfer; a 200 is written beside the copy and renamed over it, so a
//! transfer that fails leaves the old copy, and the fingerprint of the new one decides
//! whether anything must be transcoded. A server that sends no validators is fetched
//! whole each time.
//!
//! The transcoder then reads a local file: it seeks freely, and a slow or flaky server
//! fails the fetch with a clear error instead of a decoder in the middle of a file.
//! ureq is a small blocking client, which suits the ingest thread; its TLS takes the
//! system's trust store (`native-certs`), as GStreamer's HTTP sources do for live pulls.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::info;

/// Connecting, and each read of the body, may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_REDIRECTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {url} answered {status} {reason}")]
    Status {
        url: String,
        status: u16,
        reason: String,
    },
    #[error("GET {url}: {error}")]
    Transport { url: String, error: String },
    #[error("cannot write {}: {error}", .path.display())]
    Io { path: PathBuf, error: io::Error },
}

/// What the server said of the copy we have.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Validators {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// The local copy of `url` for asset `id` under `dir`, fetched or refreshed now.
pub fn fetch(dir: &Path, id: &str, url: &url::Url) -> Result<PathBuf, FetchError> {
    let copy = dir.join(id);
    let record = dir.join(format!("{id}.json"));
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |error| FetchError::Io { path, error }
    };
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    // Validators count only for the copy of this very URL that is still there.
    let known = fs::read(&record)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Validators>(&bytes).ok())
        .filter(|v| v.url == url.as_str() && copy.is_file());

    let agent = ureq::AgentBuilder::new()
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout_read(READ_TIMEOUT)
        .redirects(MAX_REDIRECTS)
        .build();
    let mut request = agent.get(url.as_str());
    if let Some(known) = &known {
        if let Some(etag) = &known.etag {
            request = request.set("If-None-Match", etag);
        }
        if let Some(date) = &known.last_modified {
            request = request.set("If-Modified-Since", date);
        }
    }
    let response = match request.call() {
        Ok(response) => response,
        Err(ureq::Error::Status(status, response)) => {
            return Err(FetchError::Status {
                url: url.to_string(),
                status,
                reason: response.status_text().to_owned(),
            })
        }
        Err(ureq::Error::Transport(transport)) => {
            // Its own text repeats the URL; ours names it once, then the causes.
            let mut error = transport.kind().to_string();
            if let Some(message) = transport.message() {
                error = format!("{error}: {message}");
            }
            let mut cause = std::error::Error::source(&transport);
            while let Some(inner) = cause {
                error = format!("{error}: {inner}");
                cause = inner.source();
            }
            return Err(FetchError::Transport {
                url: url.to_string(),
                error,
            });
        }
    };
    if response.status() == 304 {
        if known.is_none() {
            // Nothing was asked conditionally: a 304 here has no copy to refer to.
            return Err(FetchError::Status {
                url: url.to_string(),
                status: 304,
                reason: "Not Modified, unasked".to_owned(),
            });
        }
        info!(asset = id, %url, "VOD source unchanged on its server.");
        return Ok(copy);
    }
    let validators = Validators {
        url: url.to_string(),
        etag: response.header("ETag").map(str::to_owned),
        last_modified: response.header("Last-Modified").map(str::to_owned),
    };
    info!(asset = id, %url, "Fetching the VOD source.");
    let partial = dir.join(format!(".{id}.{}.partial", std::process::id()));
    let written = (|| {
        let mut file = File::create(&partial)?;
        io::copy(&mut response.into_reader(), &mut file)?;
        file.sync_all()
    })();
    if let Err(error) = written {
        let _ = fs::remove_file(&partial);
        // A body cut short is the server's or the network's failure, not the disk's.
        return Err(match error.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::PermissionDenied => FetchError::Io {
                path: partial,
                error,
            },
            _ => FetchError::Transport {
                url: url.to_string(),
                error: error.to_string(),
            },
        });
    }
    fs::rename(&partial, &copy).map_err(io_error(&copy))?;
    let json = serde_json::to_vec_pretty(&validators).unwrap_or_default();
    fs::write(&record, json).map_err(io_error(&record))?;
    Ok(copy)
}
