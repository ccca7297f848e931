//! Finds the line and column of a key path (`routes[1].port`) in a YAML text.
//!
//! serde_yaml reports positions for errors it finds itself, but not for values that are
//! checked afterwards (a route naming a port that does not exist). This walks the YAML
//! event stream of yaml-rust2, which carries positions, and tracks the path of each node.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Parses `a.b[2].c` into segments.
pub fn parse_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(Seg::Key(rest[..i].to_string()));
            }
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                if let Ok(n) = rest[1..end].parse() {
                    out.push(Seg::Index(n));
                }
                rest = &rest[end + 1..];
            }
        } else if !rest.is_empty() {
            out.push(Seg::Key(rest.to_string()));
        }
    }
    out
}

enum Level {
    Map {
        want_key: bool,
        key: Option<String>,
        key_mark: Option<Marker>,
    },
    Seq {
        index: usize,
    },
}

struct Walker<'a> {
    target: &'a [Seg],
    stack: Vec<Level>,
    found: Option<Marker>,
    /// The node found is a mapping that just started: its first key, if earlier, is its
    /// start (yaml-rust2 marks a block mapping's start at the `:` after its first key).
    first_key_pending: bool,
}

impl Walker<'_> {
    fn path_matches(&self) -> bool {
        if self.stack.len() != self.target.len() {
            return false;
        }
        self.stack
            .iter()
            .zip(self.target)
            .all(|(l, s)| match (l, s) {
                (Level::Map { key: Some(k), .. }, Seg::Key(t)) => k == t,
                (Level::Seq { index }, Seg::Index(t)) => index == t,
                _ => false,
            })
    }

    /// A node starts. Returns true if it is a key of the enclosing map.
    fn node_start(&mut self, scalar: Option<&str>, mark: Marker) -> bool {
        if let Some(Level::Map {
            want_key,
            key,
            key_mark,
        }) = self.stack.last_mut()
        {
            if *want_key {
                *key = scalar.map(str::to_string);
                *key_mark = Some(mark);
                *want_key = false;
                return true;
            }
        }
        if self.found.is_none() && self.path_matches() {
            // Point at the key for map values: that is the line a user edits.
            let m = match self.stack.last() {
                Some(Level::Map {
                    key_mark: Some(k), ..
                }) => *k,
                _ => mark,
            };
            self.found = Some(m);
        }
        false
    }

    /// A value node ended: the enclosing map wants a key next, a sequence moves on.
    fn value_end(&mut self) {
        match self.stack.last_mut() {
            Some(Level::Map { want_key, .. }) => *want_key = true,
            Some(Level::Seq { index }) => *index += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Walker<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        // The event after a found mapping's start: its first key, if it is a scalar.
        let first_key =
            std::mem::take(&mut self.first_key_pending) && matches!(ev, Event::Scalar(..));
        if first_key && self.found.is_some_and(|f| mark.index() < f.index()) {
            self.found = Some(mark);
        }
        match ev {
            Event::Scalar(ref v, ..) => {
                let is_key = self.node_start(Some(v), mark);
                if !is_key {
                    self.value_end();
                }
            }
            Event::Alias(_) => {
                let is_key = self.node_start(None, mark);
                if !is_key {
                    self.value_end();
                }
            }
            Event::MappingStart(..) => {
                let found_before = self.found.is_some();
                self.node_start(None, mark);
                self.first_key_pending = !found_before && self.found.is_some();
                self.stack.push(Level::Map {
                    want_key: true,
                    key: None,
                    key_mark: None,
                });
            }
            Event::SequenceStart(..) => {
                self.node_start(None, mark);
                self.stack.push(Level::Seq { index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_end();
            }
            _ => {}
        }
    }
}

/// The 1-based (line, column) of `path` in `text`, or of its closest existing parent.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let segs = parse_path(path);
    for n in (1..=segs.len()).rev() {
        let mut w = Walker {
            target: &segs[..n],
            stack: Vec::new(),
            found: None,
            first_key_pending: false,
        };
        let mut p = Parser::new_from_str(text);
        if p.load(&mut w, false).is_err() {
            return None;
        }
        if let Some(m) = w.found {
            return Some((m.line(), m.col() + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "eal: { cores: \"0-1\" }\nports:\n  - name: lan0\n    device: x\n  - name: lan1\n    device: y\nroutes:\n  - { prefix: \"0.0.0.0/0\", via: \"198.18.0.1\", port: lan9 }\n";

    #[test]
    fn finds_keys_in_block_and_flow_style() {
        assert_eq!(locate(DOC, "ports[1].device"), Some((6, 5)));
        assert_eq!(locate(DOC, "ports[0].name"), Some((3, 5)));
        assert_eq!(locate(DOC, "routes[0].port").map(|l| l.0), Some(8));
        assert_eq!(locate(DOC, "eal.cores").map(|l| l.0), Some(1));
    }

    #[test]
    fn falls_back_to_the_nearest_parent() {
        assert_eq!(locate(DOC, "ports[1].missing"), locate(DOC, "ports[1]"));
        assert_eq!(
            locate(DOC, "ports[1]"),
            Some((5, 5)),
            "a block mapping starts at its first key"
        );
        assert_eq!(
            locate(DOC, "routes[0]"),
            Some((8, 5)),
            "a flow mapping at its brace"
        );
        assert_eq!(locate(DOC, "nothing.here"), None);
    }

    #[test]
    fn path_syntax() {
        assert_eq!(
            parse_path("routes[1].port"),
            vec![
                Seg::Key("routes".into()),
                Seg::Index(1),
                Seg::Key("port".into())
            ]
        );
    }
}
