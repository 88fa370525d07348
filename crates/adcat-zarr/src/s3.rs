//! Zarr stores in S3-compatible object storage: `s3://bucket/prefix`.
//!
//! Requests go through `object_store` (ranged GETs, coalesced by `zarrs_object_store`;
//! retries with exponential backoff on 5xx, throttling and timeouts) and are made
//! synchronous for the engine by zarrs' `AsyncToSyncStorageAdapter` on one tokio runtime
//! for the process. The engine calls stores from plain and rayon threads, never from
//! inside the runtime, which is what the adapter requires.
//!
//! Configuration is the usual environment: `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (default `us-east-1`),
//! `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint, and the other `AWS_*` keys
//! `object_store` reads.

use adcat_store::{Result, StoreError};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientConfigKey, RetryConfig};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use zarrs::storage::storage_adapter::async_to_sync::{AsyncToSyncBlockOn, AsyncToSyncStorageAdapter};
use zarrs::storage::ReadableWritableListableStorage;

/// The URL scheme of a store in S3-compatible object storage.
pub const SCHEME: &str = "s3://";

/// Whether `location` names a store in object storage (`s3://...`).
pub fn is_url(location: &str) -> bool {
    location.starts_with(SCHEME)
}

/// A parsed `s3://bucket/prefix` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket.
    pub bucket: String,
    /// The key prefix of the store inside the bucket, without a trailing `/` (may be empty).
    pub prefix: String,
}

impl S3Url {
    /// Parse `s3://bucket/prefix`; the reason when it is not one.
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        let rest = url.strip_prefix(SCHEME).ok_or_else(|| format!("{url}: not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{url}: no bucket (expected s3://BUCKET/PREFIX)"));
        }
        let prefix = prefix.trim_end_matches('/');
        // Empty parts (`s3://b//x`) would name the same objects as `s3://b/x` under
        // another spelling, which comparisons of outputs with inputs would miss.
        if !prefix.is_empty() && prefix.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
            return Err(format!("{url}: the key prefix has an empty, '.' or '..' part"));
        }
        Ok(Self { bucket: bucket.to_owned(), prefix: prefix.to_owned() })
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.bucket, self.prefix)
    }
}

/// `url` spelled as adcat records and compares it (`s3://BUCKET/PREFIX`, no trailing
/// `/`), or as given when it does not parse.
pub fn normalize(url: &str) -> String {
    S3Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.to_string())
}

/// The process's runtime for object-store requests (its worker threads do the I/O; the
/// engine's threads wait on it).
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("adcat-s3").enable_all().build().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| StoreError::Open { location: "s3".into(), reason: format!("cannot start the I/O runtime: {e}") })
}

struct TokioBlockOn(tokio::runtime::Handle);

impl AsyncToSyncBlockOn for TokioBlockOn {
    fn block_on<F: core::future::Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

/// Retries for transient errors: a few, with backoff, and a bound on the whole so that
/// an unreachable endpoint fails within seconds, not minutes.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig { init_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(5), base: 2.0 },
        max_retries: 4,
        retry_timeout: Duration::from_secs(30),
    }
}

/// An S3 client for `url`'s bucket: adcat's timeouts and retries, then the `AWS_*`
/// environment (which may override them).
fn client(url: &S3Url) -> Result<object_store::aws::AmazonS3> {
    // reqwest is built without a provider of its own; an error means one is installed.
    // ring has no post-quantum key exchange (hence deprecated); S3 endpoints need none.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = AmazonS3Builder::new()
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), "5s")
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "120s")
        .with_region("us-east-1")
        .with_retry(retry());
    for (key, value) in std::env::vars() {
        if key.starts_with("AWS_") {
            if let Ok(k) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(k, value);
            }
        }
    }
    builder.with_bucket_name(&url.bucket).build().map_err(|e| StoreError::Open { location: url.to_string(), reason: one_line(&e) })
}

/// Requests in flight at once per store, at most (`--s3-concurrency`).
static CONCURRENCY: AtomicUsize = AtomicUsize::new(DEFAULT_CONCURRENCY);

/// The default of [`set_concurrency`].
pub const DEFAULT_CONCURRENCY: usize = 32;

/// Bound the requests in flight at once to each store opened from now on (at least 1).
pub fn set_concurrency(n: usize) {
    CONCURRENCY.store(n.max(1), Ordering::Relaxed);
}

/// The zarrs storage of the store at `url` (keys relative to its prefix), with at most
/// [`set_concurrency`] requests in flight.
pub fn storage(url: &S3Url) -> Result<ReadableWritableListableStorage> {
    let s3 = object_store::limit::LimitStore::new(client(url)?, CONCURRENCY.load(Ordering::Relaxed));
    adapt(object_store::prefix::PrefixStore::new(s3, url.prefix.as_str()))
}

/// As [`storage`], without the bound on requests in flight: for removing a prefix,
/// whose listing holds a request slot while its deletions need more (with a bound of 1
/// that would wait forever).
pub(crate) fn storage_unbounded(url: &S3Url) -> Result<ReadableWritableListableStorage> {
    adapt(object_store::prefix::PrefixStore::new(client(url)?, url.prefix.as_str()))
}

fn adapt<S: object_store::ObjectStore>(store: S) -> Result<ReadableWritableListableStorage> {
    let store = Arc::new(zarrs_object_store::AsyncObjectStore::new(store));
    Ok(Arc::new(AsyncToSyncStorageAdapter::new(store, TokioBlockOn(runtime()?.handle().clone()))))
}

/// Why `url` cannot be opened as a zarr store when that is clear from its name alone:
/// an HDF5 file (h5ad) in object storage.
pub(crate) fn not_zarr(url: &S3Url) -> Option<String> {
    let ext = url.prefix.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    matches!(ext.as_str(), "h5ad" | "h5" | "hdf5").then(|| {
        "h5ad (HDF5) files are read from local paths only; download it first (e.g. `aws s3 cp URL .`), or keep the data in object storage as zarr (`adcat convert FILE.h5ad s3://BUCKET/NAME.zarr`)".to_owned()
    })
}

/// Why no store opened at `url` (no root metadata): a missing bucket, nothing under the
/// prefix, or objects that are not a zarr hierarchy.
pub(crate) fn why_no_store(url: &S3Url, storage: &ReadableWritableListableStorage) -> String {
    match storage.list_dir(&zarrs::storage::StorePrefix::root()) {
        Err(e) if e.to_string().contains("NoSuchBucket") => format!("the bucket '{}' does not exist at this endpoint", url.bucket),
        Err(e) => one_line(&e),
        Ok(l) if l.keys().is_empty() && (l.prefixes().is_empty() || !any_object(url).unwrap_or(true)) => "no such store (nothing under this prefix)".into(),
        Ok(_) => "not a zarr store (no zarr.json or .zgroup under this prefix)".into(),
    }
}

/// A cheap identity of the store at `url`: size and ETag (else modification time) of
/// its root metadata objects. Rewriting a store changes it (consolidated metadata is
/// rewritten with it); a chunk replaced in place may not.
pub fn fingerprint(url: &str) -> Result<String> {
    use object_store::ObjectStoreExt;
    let parsed = S3Url::parse(url).map_err(|reason| StoreError::Open { location: url.to_owned(), reason })?;
    let s3 = client(&parsed)?;
    let mut parts = vec![];
    for doc in ["zarr.json", ".zgroup", ".zattrs", ".zmetadata"] {
        let key = if parsed.prefix.is_empty() { doc.to_owned() } else { format!("{}/{doc}", parsed.prefix) };
        match runtime()?.block_on(s3.head(&object_store::path::Path::from(key))) {
            Ok(m) => parts.push(format!("{doc}:{}@{}", m.size, m.e_tag.unwrap_or_else(|| m.last_modified.to_rfc3339()))),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(StoreError::Open { location: url.to_owned(), reason: one_line(&e) }),
        }
    }
    if parts.is_empty() {
        return Err(StoreError::Open { location: url.to_owned(), reason: "no zarr store here".into() });
    }
    Ok(parts.join(" "))
}

/// Whether any object exists under `url`'s prefix: one listing request, whatever the
/// number of objects. (A delimited listing is not enough: servers that keep directories,
/// such as SeaweedFS, list emptied ones as common prefixes.)
pub fn any_object(url: &S3Url) -> Result<bool> {
    use futures::StreamExt;
    let s3 = client(url)?;
    let prefix = (!url.prefix.is_empty()).then(|| object_store::path::Path::from(url.prefix.as_str()));
    match runtime()?.block_on(async { object_store::ObjectStore::list(&s3, prefix.as_ref()).next().await }) {
        None => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) => Err(StoreError::Open { location: url.to_string(), reason: one_line(&e) }),
    }
}

/// An error of `object_store` on one line: its `Display` chains sources with newlines.
pub(crate) fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(S3Url::parse("s3://b/a/x.zarr/").unwrap(), S3Url { bucket: "b".into(), prefix: "a/x.zarr".into() });
        assert_eq!(S3Url::parse("s3://b").unwrap(), S3Url { bucket: "b".into(), prefix: String::new() });
        assert!(S3Url::parse("s3:///x").is_err());
        assert!(S3Url::parse("s3://b/a/../x").is_err());
        assert!(S3Url::parse("s3://b/a//x").is_err());
        assert!(S3Url::parse("s3://b//x").is_err());
        assert_eq!(normalize("s3://b/a/x.zarr/"), "s3://b/a/x.zarr");
        assert!(S3Url::parse("/tmp/x").is_err());
        assert!(is_url("s3://b/x") && !is_url("x.zarr"));
    }
}
