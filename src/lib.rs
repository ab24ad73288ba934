//! headend: one catalog, one encode, every screen.
//!
//! The module tree follows the data: `catalog` → `supervisor` → `pipeline` →
//! `packager` → `store` → `origin`; `reload` takes the supervisor from one catalog to
//! the next; `status` is what the supervisor, pipeline, packager and origin report for
//! operators. The origin knows nothing of GStreamer.

pub mod catalog;
pub mod iptv;
pub mod origin;
pub mod packager;
pub mod pipeline;
pub mod reload;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod ts;
pub mod vod;
