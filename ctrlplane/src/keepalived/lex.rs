//! keepalived.conf as keepalived reads it (lib/parser.c), into lines of words: `include`
//! with glob patterns (relative to the including file's directory), comments from `!`
//! or `#` outside quotes, `@id` lines kept only when `id` is the config id (`@^id`:
//! when it is not), `$NAME=value` definitions expanded as `$NAME` or `${NAME}`
//! (a trailing `\` continues a definition), double-quoted words, and `{`/`}` as words of
//! their own.

use super::{err, Pos, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One line's words, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub words: Vec<String>,
    pub pos: Pos,
}

/// How deep includes may nest (keepalived's limit is its file descriptors; a loop of
/// includes must end somewhere).
const MAX_DEPTH: usize = 32;

/// Reads `path` and everything it includes.
pub fn read(path: &Path, config_id: &str) -> Result<Vec<Line>> {
    let mut r = Reader {
        config_id,
        defs: HashMap::new(),
        out: Vec::new(),
    };
    let top = Pos {
        file: path.display().to_string(),
        line: 0,
    };
    r.file(path, &top, 0)?;
    Ok(r.out)
}

/// Reads `text` as a file named `name` (includes resolved from the current directory).
pub fn read_text(text: &str, name: &str, config_id: &str) -> Result<Vec<Line>> {
    let mut r = Reader {
        config_id,
        defs: HashMap::new(),
        out: Vec::new(),
    };
    r.text(text, name, Path::new("."), 0)?;
    Ok(r.out)
}

struct Reader<'a> {
    config_id: &'a str,
    defs: HashMap<String, String>,
    out: Vec<Line>,
}

impl Reader<'_> {
    fn file(&mut self, path: &Path, from: &Pos, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return err(from, "include: nested too deep (an include loop?)");
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if depth == 0 => {
                return err(from, format!("cannot read {}: {e}", path.display()))
            }
            Err(e) => return err(from, format!("include {}: {e}", path.display())),
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.text(&text, &path.display().to_string(), &dir, depth)
    }

    fn text(&mut self, text: &str, name: &str, dir: &Path, depth: usize) -> Result<()> {
        let mut lines = text.lines().enumerate();
        while let Some((n, raw)) = lines.next() {
            let pos = Pos {
                file: name.to_string(),
                line: n + 1,
            };
            let mut line = raw.trim().to_string();
            // `@id` / `@^id`: this line for one config id only.
            if let Some(rest) = line.strip_prefix('@') {
                let (tag, body) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                let keep = match tag.strip_prefix('^') {
                    Some(t) => t != self.config_id,
                    None => tag == self.config_id,
                };
                if !keep {
                    continue;
                }
                line = body.trim().to_string();
            }
            // `$NAME=value` (continued by a trailing `\`).
            if let Some(def) = line.strip_prefix('$') {
                if let Some((k, v)) = def.split_once('=') {
                    let k = k.trim();
                    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        let mut v = v.trim().to_string();
                        while v.ends_with('\\') {
                            v.pop();
                            match lines.next() {
                                Some((_, more)) => {
                                    v.push('\n');
                                    v.push_str(more.trim());
                                }
                                None => break,
                            }
                        }
                        self.defs.insert(k.to_string(), v);
                        continue;
                    }
                }
            }
            // Expansion, then (each expanded line of a multi-line definition) words.
            let expanded = self.expand(&line, &pos)?;
            for part in expanded.split('\n') {
                let words = words(part, &pos)?;
                match words.first().map(String::as_str) {
                    None => {}
                    Some("include") => {
                        let [_, pattern] = words.as_slice() else {
                            return err(&pos, "include: one path (a glob pattern) expected");
                        };
                        self.include(dir, pattern, &pos, depth)?;
                    }
                    Some(w) if w.starts_with("~SEQ") => {
                        return err(
                            &pos,
                            "~SEQ: rvs does not expand sequences; write the lines out",
                        )
                    }
                    Some(_) => self.out.push(Line {
                        words,
                        pos: pos.clone(),
                    }),
                }
            }
        }
        Ok(())
    }

    fn include(&mut self, dir: &Path, pattern: &str, pos: &Pos, depth: usize) -> Result<()> {
        let full: PathBuf = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            dir.join(pattern)
        };
        let text = full.display().to_string();
        let paths = match glob::glob(&text) {
            Ok(p) => p,
            Err(e) => return err(pos, format!("include {pattern}: bad pattern: {e}")),
        };
        let mut matched: Vec<PathBuf> = paths.filter_map(|p| p.ok()).collect();
        matched.sort();
        if matched.is_empty() {
            return err(pos, format!("include {pattern}: no file matches {text}"));
        }
        for p in matched {
            self.file(&p, pos, depth + 1)?;
        }
        Ok(())
    }

    /// `$NAME` and `${NAME}` replaced by their definitions; an undefined name is an
    /// error (keepalived leaves it as written, which then fails elsewhere).
    fn expand(&self, line: &str, pos: &Pos) -> Result<String> {
        if !line.contains('$') {
            return Ok(line.to_string());
        }
        let mut out = String::new();
        let mut rest = line;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, tail) = if let Some(b) = after.strip_prefix('{') {
                match b.split_once('}') {
                    Some((n, t)) => (n, t),
                    None => return err(pos, "${ without its closing }"),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if name.is_empty() {
                out.push('$');
                rest = after;
                continue;
            }
            match self.defs.get(name) {
                Some(v) => out.push_str(v),
                None => return err(pos, format!("${name}: not defined before this line")),
            }
            rest = tail;
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A line's words: whitespace-separated, `"..."` one word, `{` and `}` words of their
/// own, and a `!` or `#` outside quotes ending the line.
pub fn words(line: &str, pos: &Pos) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut q = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e) => q.push(e),
                            None => return err(pos, "a quoted string is not closed"),
                        },
                        Some(x) => q.push(x),
                        None => return err(pos, "a quoted string is not closed"),
                    }
                }
                cur.push_str(&q);
                // A quoted word stands alone, even when empty.
                out.push(std::mem::take(&mut cur));
            }
            '!' | '#' => break,
            '{' | '}' => {
                flush(&mut cur, &mut out);
                out.push(c.to_string());
            }
            c if c.is_whitespace() => flush(&mut cur, &mut out),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    Ok(out)
}
