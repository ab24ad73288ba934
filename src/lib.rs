//! headend: one catalog, one encode, every screen.
//!
//! The module tree follows the data: `catalog` → `supervisor` → `pipeline` →
//! `packager` → `store` → `origin`; `reload` takes the supervisor from one catalog to
//! the next; `status` is what the supervisor, pipeline, packager and origin report for
//! operators. The origin knows nothing of GStreamer. `sealed` keeps the store's
//! segments in sealed memory files the origin sends with sendfile(2).

pub mod catalog;
pub mod iptv;
pub mod origin;
pub mod packager;
pub mod pipeline;
pub mod reload;
pub mod sealed;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod ts;
pub mod vod;
