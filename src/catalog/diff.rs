//! What a catalog reload changes, channel by channel: a plain value the supervisor
//! applies in a fixed order.
//!
//! A channel is compared by what its pipeline is built from, resolved: its source,
//! outputs, multicast block and failover, and the ladder it names and that ladder's encoder
//! profile as values (so editing a ladder or an encoder profile restarts every channel
//! that uses it, and renaming a ladder without changing it restarts nothing). What is
//! left, [`LIVE_FIELDS`], is only listed, never built into a pipeline, and changes
//! while the channel runs.

use super::{Catalog, Channel, EncoderProfile, Failover, Ladder, Multicast, Outputs, Source};

/// The channel fields a reload changes without restarting the channel: they are read
/// by the listings (`/playlist.m3u`, `/epg.xml`) on every request, and the name also by
/// the transport stream's SDT, which takes a new name at once. The TS program number
/// follows `number` only at the channel's next restart.
pub const LIVE_FIELDS: [&str; 5] = ["name", "number", "group", "logo", "epg"];

/// How two catalogs differ. Each list is in channel-id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogDiff {
    /// In the new catalog only: start.
    pub added: Vec<String>,
    /// In the old catalog only: stop, and its URLs answer 404.
    pub removed: Vec<String>,
    /// In both, built differently: restart that channel alone.
    pub restarted: Vec<String>,
    /// In both, built the same, written differently (a live field changed): nothing
    /// restarts.
    pub updated: Vec<String>,
}

impl CatalogDiff {
    /// The changes that take `old` to `new`.
    pub fn between(old: &Catalog, new: &Catalog) -> CatalogDiff {
        let mut diff = CatalogDiff::default();
        for channel in &new.channels {
            match old.channels.iter().find(|c| c.id == channel.id) {
                None => diff.added.push(channel.id.clone()),
                Some(before) if Build::of(old, before) != Build::of(new, channel) => {
                    diff.restarted.push(channel.id.clone());
                }
                Some(before) if before != channel => diff.updated.push(channel.id.clone()),
                Some(_) => {}
            }
        }
        diff.removed = old
            .channels
            .iter()
            .filter(|c| !new.channels.iter().any(|n| n.id == c.id))
            .map(|c| c.id.clone())
            .collect();
        for list in [
            &mut diff.added,
            &mut diff.removed,
            &mut diff.restarted,
            &mut diff.updated,
        ] {
            list.sort();
        }
        diff
    }

    /// No channel changes (the catalog may still differ elsewhere: VOD assets, a
    /// ladder no channel uses).
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.restarted.is_empty()
            && self.updated.is_empty()
    }
}

/// Everything a channel's pipeline is built from. Two channels with equal `Build`s run
/// the same pipeline.
#[derive(Debug, PartialEq, Eq)]
struct Build<'a> {
    source: &'a Source,
    outputs: &'a Outputs,
    multicast: Option<&'a Multicast>,
    failover: Option<&'a Failover>,
    ladder: Option<&'a Ladder>,
    encoder: Option<&'a EncoderProfile>,
}

impl<'a> Build<'a> {
    /// A validated catalog always holds the channel's ladder and encoder; `None` here
    /// would only ever compare unequal to a real one, which restarts the channel.
    fn of(catalog: &'a Catalog, channel: &'a Channel) -> Build<'a> {
        // Every field is named here, so a new one cannot be forgotten: it is either
        // built into the pipeline (here) or one of `LIVE_FIELDS`. The ladder's name
        // stands for its values, and the id is what channels are matched by.
        let Channel {
            id: _,
            number: _,
            name: _,
            group: _,
            logo: _,
            epg: _,
            source,
            ladder,
            outputs,
            multicast,
            failover,
        } = channel;
        let ladder = catalog.ladders.get(ladder);
        Build {
            source,
            outputs,
            multicast: multicast.as_ref(),
            failover: failover.as_ref(),
            ladder,
            encoder: ladder.and_then(|l| catalog.encoders.get(&l.encoder)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    const BASE: &str = r#"
encoders:
  x264: { element: x264enc }
  x264-slow: { element: x264enc, properties: { speed-preset: slow } }
ladders:
  small:
    encoder: x264
    segment_duration: 2
    gop: 2
    window: 5
    renditions:
      - { name: 240p, width: 320, height: 240, bitrate: 300, profile: main, max_framerate: 25 }
    audio: { codec: aac, bitrate: 64, channels: 2 }
  other:
    encoder: x264
    segment_duration: 2
    gop: 2
    window: 5
    renditions:
      - { name: 240p, width: 320, height: 240, bitrate: 300, profile: main, max_framerate: 25 }
    audio: { codec: aac, bitrate: 64, channels: 2 }
channels:
  - { id: a, number: 1, name: A, group: G, source: { uri: "test://" }, ladder: small }
  - { id: b, number: 2, name: B, group: G, source: { uri: "test://" }, ladder: small }
  - { id: c, number: 3, name: C, group: G, source: { uri: "test://" }, ladder: other }
"#;

    fn catalog(text: &str) -> Catalog {
        Catalog::from_texts(&[(PathBuf::from("/srv/catalog.yaml"), text.to_owned())])
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn diff(edit: impl Fn(&str) -> String) -> CatalogDiff {
        CatalogDiff::between(&catalog(BASE), &catalog(&edit(BASE)))
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_same_catalog_changes_nothing() {
        let diff = diff(str::to_owned);
        assert!(diff.is_empty(), "{diff:?}");
    }

    #[test]
    fn added_and_removed_channels_are_found_by_id() {
        let diff = diff(|text| {
            text.replace(
                "  - { id: b,",
                "  - { id: d, number: 4, name: D, group: G, source: { uri: \"test://\" }, ladder: small }\n  - { id: x,",
            )
            .replace("id: x, number: 2", "id: b2, number: 2")
        });
        assert_eq!(diff.added, ids(&["b2", "d"]));
        assert_eq!(diff.removed, ids(&["b"]));
        assert!(diff.restarted.is_empty() && diff.updated.is_empty());
    }

    #[test]
    fn live_fields_update_without_a_restart() {
        let diff = diff(|text| {
            text.replace("name: A, group: G", "name: Alpha, group: News")
                .replace("number: 2, name: B", "number: 20, name: B")
                .replace(
                    "name: C, group: G,",
                    "name: C, group: G, logo: \"https://x/c.png\",",
                )
        });
        assert_eq!(diff.updated, ids(&["a", "b", "c"]));
        assert!(diff.restarted.is_empty() && diff.added.is_empty() && diff.removed.is_empty());
    }

    #[test]
    fn a_source_change_restarts_that_channel_only() {
        let diff = diff(|text| {
            text.replacen(
                "source: { uri: \"test://\" }",
                "source: { uri: \"test://?pattern=ball\" }",
                1,
            )
        });
        assert_eq!(diff.restarted, ids(&["a"]));
        assert!(diff.updated.is_empty());
    }

    #[test]
    fn a_restart_wins_over_a_live_change_of_the_same_channel() {
        let diff = diff(|text| {
            text.replace(
                "name: A, group: G, source: { uri: \"test://\" }",
                "name: Alpha, group: G, source: { uri: \"test://?pattern=ball\" }",
            )
        });
        assert_eq!(diff.restarted, ids(&["a"]));
        assert!(diff.updated.is_empty());
    }

    #[test]
    fn a_ladder_edit_restarts_every_channel_on_that_ladder() {
        let diff = diff(|text| text.replacen("window: 5", "window: 6", 1));
        assert_eq!(diff.restarted, ids(&["a", "b"]));
    }

    #[test]
    fn an_encoder_edit_restarts_every_channel_whose_ladder_uses_it() {
        let switched = diff(|text| text.replace("encoder: x264\n", "encoder: x264-slow\n"));
        assert_eq!(switched.restarted, ids(&["a", "b", "c"]));
        let edited = diff(|text| {
            text.replace(
                "x264: { element: x264enc }",
                "x264: { element: x264enc, properties: { speed-preset: fast } }",
            )
        });
        assert_eq!(edited.restarted, ids(&["a", "b", "c"]));
    }

    #[test]
    fn naming_an_identical_ladder_restarts_nothing() {
        let diff = diff(|text| text.replace("ladder: other", "ladder: small"));
        // `c` names another ladder with the same values: it runs the same pipeline,
        // and the ladder's name is nowhere in its output.
        assert!(diff.restarted.is_empty(), "{diff:?}");
        assert_eq!(diff.updated, ids(&["c"]));
    }

    #[test]
    fn failover_fields_restart_their_channel() {
        for block in [
            "backup: { uri: \"test://?pattern=ball\" }",
            "slate: { image: off-air.png }",
            "slate: {}",
            "stall_timeout: 2",
        ] {
            let diff = diff(|text| {
                text.replace(
                    "ladder: small }\n  - { id: b",
                    &format!("ladder: small, {block} }}\n  - {{ id: b"),
                )
            });
            assert_eq!(diff.restarted, ids(&["a"]), "{block}");
            assert!(diff.updated.is_empty(), "{block}");
        }
    }

    #[test]
    fn a_multicast_block_restarts_its_channel() {
        let diff = diff(|text| {
            text.replace(
                "ladder: small }\n  - { id: b",
                "ladder: small, multicast: { group: 239.255.0.9, port: 5000 } }\n  - { id: b",
            )
        });
        assert_eq!(diff.restarted, ids(&["a"]));
    }
}
