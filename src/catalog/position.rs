//! Where each YAML node sits in its file.
//!
//! serde_yaml places syntax errors and unknown fields, but once a file has
//! deserialized, the values no longer know where they came from. The
//! validation pass still has to say "line 12, column 9", so this module reads
//! the same text a second time as a yaml-rust2 event stream and records the
//! line and column of every node under its path (`channels[2].id`).

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

/// A place in a YAML file, both numbers counted from 1 as editors do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    fn from_marker(marker: Marker) -> Position {
        // yaml-rust2 counts lines from 1 but columns from 0.
        Position {
            line: marker.line(),
            column: marker.col() + 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    Key(String),
    Index(usize),
}

/// The path from the document root to one node: `ladders.default.renditions[0].name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(super) struct NodePath(Vec<Segment>);

impl NodePath {
    pub fn root() -> NodePath {
        NodePath(Vec::new())
    }

    pub fn key(&self, key: &str) -> NodePath {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        NodePath(segments)
    }

    pub fn index(&self, index: usize) -> NodePath {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        NodePath(segments)
    }
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if n == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Marks {
    /// Where the mapping key naming this node starts; `None` for sequence
    /// items and the root.
    key: Option<Position>,
    value: Position,
}

/// A key that appears twice in one mapping. YAML forbids it, and serde would
/// silently keep the last one for maps such as `ladders:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DuplicateKey {
    pub key: String,
    pub first: Position,
    pub again: Position,
}

/// The position of every node of the first document of a YAML text.
#[derive(Debug, Clone, Default)]
pub(super) struct Positions {
    nodes: HashMap<Vec<Segment>, Marks>,
}

impl Positions {
    /// Indexes `text`. A text that does not parse yields the nodes read
    /// before the error: serde_yaml reports the error itself.
    pub fn of_yaml(text: &str) -> (Positions, Vec<DuplicateKey>) {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        while let Ok((event, marker)) = parser.next_token() {
            if event == Event::StreamEnd {
                break;
            }
            builder.event(event, Position::from_marker(marker));
        }
        (
            Positions {
                nodes: builder.nodes,
            },
            builder.duplicates,
        )
    }

    /// Where the node at `path` starts; for a node that is absent (a field
    /// left to its default, or content brought in by an alias), where its
    /// nearest present ancestor starts.
    pub fn value(&self, path: &NodePath) -> Option<Position> {
        (0..=path.0.len())
            .rev()
            .find_map(|len| self.nodes.get(&path.0[..len]))
            .map(|marks| marks.value)
    }

    /// Where the key naming the node at `path` starts, for problems with the
    /// name itself (`ladders.default` defined twice). Falls back like
    /// [`Positions::value`].
    pub fn key(&self, path: &NodePath) -> Option<Position> {
        match self.nodes.get(path.0.as_slice()) {
            Some(Marks {
                key: Some(key),
                value: _,
            }) => Some(*key),
            _ => self.value(path),
        }
    }
}

/// What the next node inside a mapping is.
#[derive(Debug)]
enum Expect {
    Key,
    /// The value of this key; `None` for a key that is not a plain string
    /// (a sequence or alias as key), whose value gets no path.
    Value(Option<String>, Position),
}

#[derive(Debug)]
enum Frame {
    /// `path` is `None` inside nodes that have no path (complex keys).
    Mapping {
        path: Option<NodePath>,
        expect: Expect,
        keys: HashMap<String, Position>,
        first_key_seen: bool,
    },
    Sequence {
        path: Option<NodePath>,
        next: usize,
    },
}

/// Turns the event stream into `Positions` with an explicit stack, so deep
/// nesting in hostile input cannot overflow the call stack.
#[derive(Debug, Default)]
struct Builder {
    stack: Vec<Frame>,
    root_seen: bool,
    nodes: HashMap<Vec<Segment>, Marks>,
    duplicates: Vec<DuplicateKey>,
}

impl Builder {
    fn event(&mut self, event: Event, at: Position) {
        match event {
            Event::Scalar(text, ..) => self.node(Node::Scalar(text), at),
            Event::Alias(_) => self.node(Node::Alias, at),
            Event::MappingStart(..) => self.node(Node::Mapping, at),
            Event::SequenceStart(..) => self.node(Node::Sequence, at),
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }

    fn node(&mut self, node: Node, at: Position) {
        let (path, key) = match self.stack.last_mut() {
            None if self.root_seen => (None, None),
            None => {
                self.root_seen = true;
                (Some(NodePath::root()), None)
            }
            Some(Frame::Sequence { path, next }) => {
                let item = path.as_ref().map(|path| path.index(*next));
                *next += 1;
                (item, None)
            }
            Some(Frame::Mapping {
                path,
                expect,
                keys,
                first_key_seen,
            }) => match std::mem::replace(expect, Expect::Key) {
                Expect::Key => {
                    let name = match &node {
                        Node::Scalar(text) => Some(text.clone()),
                        Node::Alias | Node::Mapping | Node::Sequence => None,
                    };
                    if let Some(name) = &name {
                        if let Some(first) = keys.get(name) {
                            self.duplicates.push(DuplicateKey {
                                key: name.clone(),
                                first: *first,
                                again: at,
                            });
                        } else {
                            keys.insert(name.clone(), at);
                        }
                    }
                    // yaml-rust2 0.10 marks a block mapping at the end of its
                    // first key, where it finds the `:`; a flow mapping's `{`
                    // comes before its first key. Move a block mapping back
                    // onto its first key, where an editor shows it starting.
                    if !*first_key_seen {
                        *first_key_seen = true;
                        if let Some(marks) = path.as_ref().and_then(|p| self.nodes.get_mut(&p.0)) {
                            if marks.value.line == at.line && marks.value.column > at.column {
                                marks.value = at;
                            }
                        }
                    }
                    *expect = Expect::Value(name, at);
                    // A complex key's own content has no path.
                    self.push(node, None);
                    return;
                }
                Expect::Value(name, key_at) => {
                    let value_path = match (path.as_ref(), name) {
                        (Some(path), Some(name)) => Some(path.key(&name)),
                        _ => None,
                    };
                    (value_path, Some(key_at))
                }
            },
        };
        if let Some(path) = &path {
            self.nodes
                .entry(path.0.clone())
                .or_insert(Marks { key, value: at });
        }
        self.push(node, path);
    }

    fn push(&mut self, node: Node, path: Option<NodePath>) {
        match node {
            Node::Mapping => self.stack.push(Frame::Mapping {
                path,
                expect: Expect::Key,
                keys: HashMap::new(),
                first_key_seen: false,
            }),
            Node::Sequence => self.stack.push(Frame::Sequence { path, next: 0 }),
            Node::Scalar(_) | Node::Alias => {}
        }
    }
}

#[derive(Debug)]
enum Node {
    Scalar(String),
    Alias,
    Mapping,
    Sequence,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    fn path(segments: &[&str]) -> NodePath {
        segments.iter().fold(NodePath::root(), |path, segment| {
            match segment.parse::<usize>() {
                Ok(index) => path.index(index),
                Err(_) => path.key(segment),
            }
        })
    }

    const TEXT: &str = "\
channels:
  - id: news
    number: 1
    source: { uri: \"test://\", options: {} }
  - id: sport
ladders:
  default:
    renditions:
      - name: 720p
        width: 1280
";

    #[test]
    fn paths_display_like_serde_yaml() {
        assert_eq!(path(&["channels", "2", "id"]).to_string(), "channels[2].id");
        assert_eq!(
            path(&["ladders", "default", "renditions", "0"]).to_string(),
            "ladders.default.renditions[0]"
        );
        assert_eq!(NodePath::root().to_string(), "");
    }

    #[test]
    fn scalars_are_placed_at_their_first_character() {
        let (positions, duplicates) = Positions::of_yaml(TEXT);
        assert_eq!(duplicates, []);
        assert_eq!(positions.value(&path(&["channels", "0", "id"])), at(2, 9));
        assert_eq!(
            positions.value(&path(&["channels", "0", "number"])),
            at(3, 13)
        );
        assert_eq!(positions.value(&path(&["channels", "1", "id"])), at(5, 9));
        assert_eq!(
            positions.value(&path(&["channels", "0", "source", "uri"])),
            at(4, 20)
        );
        assert_eq!(
            positions.value(&path(&["ladders", "default", "renditions", "0", "width"])),
            at(10, 16)
        );
    }

    #[test]
    fn keys_are_placed_at_the_key() {
        let (positions, _) = Positions::of_yaml(TEXT);
        assert_eq!(positions.key(&path(&["ladders", "default"])), at(7, 3));
        assert_eq!(positions.key(&path(&["channels", "0", "number"])), at(3, 5));
        // A sequence item has no key: its own start stands in.
        assert_eq!(positions.key(&path(&["channels", "1"])), at(5, 5));
    }

    #[test]
    fn block_mappings_start_at_their_first_key_and_flow_mappings_at_the_brace() {
        let (positions, _) = Positions::of_yaml(TEXT);
        assert_eq!(positions.value(&NodePath::root()), at(1, 1));
        assert_eq!(positions.value(&path(&["channels", "0"])), at(2, 5));
        assert_eq!(positions.value(&path(&["ladders", "default"])), at(8, 5));
        assert_eq!(
            positions.value(&path(&["ladders", "default", "renditions", "0"])),
            at(9, 9)
        );
        assert_eq!(
            positions.value(&path(&["channels", "0", "source"])),
            at(4, 13)
        );
        assert_eq!(
            positions.value(&path(&["channels", "0", "source", "options"])),
            at(4, 40)
        );
    }

    #[test]
    fn sequences_start_at_the_dash_or_bracket() {
        let (positions, _) = Positions::of_yaml("a:\n  - 1\nb: [x, y]\n");
        assert_eq!(positions.value(&path(&["a"])), at(2, 3));
        assert_eq!(positions.value(&path(&["b"])), at(3, 4));
        assert_eq!(positions.value(&path(&["b", "1"])), at(3, 8));
    }

    #[test]
    fn an_absent_node_is_placed_at_its_nearest_ancestor() {
        let (positions, _) = Positions::of_yaml(TEXT);
        assert_eq!(
            positions.value(&path(&["channels", "1", "ladder"])),
            at(5, 5)
        );
        assert_eq!(positions.key(&path(&["channels", "1", "ladder"])), at(5, 5));
        assert_eq!(positions.value(&path(&["encoders", "x264"])), at(1, 1));
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_places() {
        let (_, duplicates) = Positions::of_yaml("ladders:\n  a: 1\n  b: 2\n  a: 3\n");
        assert_eq!(
            duplicates,
            [DuplicateKey {
                key: "a".to_owned(),
                first: Position { line: 2, column: 3 },
                again: Position { line: 4, column: 3 },
            }]
        );
    }

    #[test]
    fn complex_keys_and_aliases_get_no_paths_but_do_not_shift_their_siblings() {
        let text = "base: &b { x: 1 }\n? [k, l]\n: { y: 2 }\ncopy: *b\nlast: 3\n";
        let (positions, _) = Positions::of_yaml(text);
        assert_eq!(positions.value(&path(&["base", "x"])), at(1, 15));
        assert_eq!(positions.value(&path(&["copy"])), at(4, 7));
        // Inside an alias nothing is indexed: the alias stands in.
        assert_eq!(positions.value(&path(&["copy", "x"])), at(4, 7));
        assert_eq!(positions.value(&path(&["last"])), at(5, 7));
        assert_eq!(positions.value(&path(&["y"])), at(1, 1));
    }

    #[test]
    fn later_documents_are_ignored() {
        let (positions, _) = Positions::of_yaml("a: 1\n---\na: 2\nb: 3\n");
        assert_eq!(positions.value(&path(&["a"])), at(1, 4));
        assert_eq!(positions.value(&path(&["b"])), at(1, 1));
    }

    #[test]
    fn a_broken_text_keeps_what_was_read_before_the_error() {
        let (positions, _) = Positions::of_yaml("a: 1\nb: [\n");
        assert_eq!(positions.value(&path(&["a"])), at(1, 4));
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let deep = "[".repeat(100_000);
        let _ = Positions::of_yaml(&deep);
        for text in [
            "",
            "-",
            ":",
            "? ",
            "*x",
            "&a [*a]",
            "{a: [}",
            "\t",
            "a: |\n b\n  c",
            "\u{feff}a: 1",
        ] {
            let _ = Positions::of_yaml(text);
        }
    }
}
