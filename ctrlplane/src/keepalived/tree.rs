//! Lines of words nested into keepalived's blocks: a line whose last word is `{` opens a
//! block for its keyword (so does a `{` alone on the next line), `}` closes it.

use super::lex::Line;
use super::{err, Pos, Result};

/// One keyword line, with its block when it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub words: Vec<String>,
    pub pos: Pos,
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    /// Word `i`, or "" past the end.
    pub fn word(&self, i: usize) -> &str {
        self.words.get(i).map(String::as_str).unwrap_or("")
    }

    /// The block's statements (none without a block).
    pub fn body(&self) -> &[Stmt] {
        self.block.as_deref().unwrap_or(&[])
    }

    /// The arguments after the keyword.
    pub fn args(&self) -> &[String] {
        self.words.get(1..).unwrap_or(&[])
    }

    /// The one argument a keyword takes.
    pub fn arg(&self) -> Result<&str> {
        match self.args() {
            [a] => Ok(a),
            [] => err(&self.pos, format!("{}: a value is missing", self.word(0))),
            _ => err(
                &self.pos,
                format!(
                    "{}: one value expected, got {:?}",
                    self.word(0),
                    self.args()
                ),
            ),
        }
    }

    /// The words of a list block (`virtual_ipaddress { ... }`), one line each.
    pub fn list(&self) -> Vec<&Stmt> {
        self.body().iter().collect()
    }
}

/// Nests `lines` into statements; braces must balance.
pub fn build(lines: Vec<Line>) -> Result<Vec<Stmt>> {
    // Open blocks: the statements read so far at each level, and the keyword that
    // opened each (with its line, for an unclosed block's message).
    let mut stack: Vec<(Vec<Stmt>, Option<Stmt>)> = vec![(Vec::new(), None)];
    let mut last_pos = Pos {
        file: String::new(),
        line: 0,
    };
    for mut l in lines {
        last_pos = l.pos.clone();
        // `}` first on a line closes (possibly several), then the rest is content.
        while l.words.first().is_some_and(|w| w == "}") {
            l.words.remove(0);
            close(&mut stack, &l.pos)?;
        }
        if l.words.is_empty() {
            continue;
        }
        // `{` alone: the previous keyword's block.
        if l.words == ["{"] {
            let level = &mut stack.last_mut().expect("the top level").0;
            match level.pop() {
                Some(prev) if prev.block.is_none() => {
                    stack.push((Vec::new(), Some(prev)));
                    continue;
                }
                _ => return err(&l.pos, "`{` with no keyword before it"),
            }
        }
        // Content, then an opening `{` at its end, then closing `}` after that (a
        // one-line block such as `url { path / }`).
        let open = l.words.iter().position(|w| w == "{");
        let (head, rest) = match open {
            Some(i) => {
                let rest = l.words.split_off(i + 1);
                l.words.pop();
                (l.words, Some(rest))
            }
            None => (l.words, None),
        };
        if head.iter().any(|w| w == "}") {
            return err(&l.pos, "`}` in the middle of a line");
        }
        if head.is_empty() {
            return err(&l.pos, "`{` with no keyword before it");
        }
        let stmt = Stmt {
            words: head,
            pos: l.pos.clone(),
            block: None,
        };
        match rest {
            None => stack.last_mut().expect("the top level").0.push(stmt),
            Some(rest) => {
                stack.push((Vec::new(), Some(stmt)));
                // What follows `{` on the same line: words up to a `}`, then closes.
                let mut words = Vec::new();
                for w in rest {
                    if w == "}" {
                        if !words.is_empty() {
                            push_words(&mut stack, std::mem::take(&mut words), &l.pos);
                        }
                        close(&mut stack, &l.pos)?;
                    } else if w == "{" {
                        return err(&l.pos, "a second `{` on one line");
                    } else {
                        words.push(w);
                    }
                }
                if !words.is_empty() {
                    push_words(&mut stack, words, &l.pos);
                }
            }
        }
    }
    if stack.len() > 1 {
        let (_, opener) = stack.pop().expect("an open block");
        let o = opener.expect("a block has its keyword");
        return err(
            &o.pos,
            format!(
                "{}: block opened here is never closed (a `}}` is missing before the end, {last_pos})",
                o.word(0)
            ),
        );
    }
    Ok(stack.pop().map(|(v, _)| v).unwrap_or_default())
}

fn push_words(stack: &mut [(Vec<Stmt>, Option<Stmt>)], words: Vec<String>, pos: &Pos) {
    if let Some(level) = stack.last_mut() {
        level.0.push(Stmt {
            words,
            pos: pos.clone(),
            block: None,
        });
    }
}

fn close(stack: &mut Vec<(Vec<Stmt>, Option<Stmt>)>, pos: &Pos) -> Result<()> {
    if stack.len() == 1 {
        return err(pos, "`}` closes no block (one too many)");
    }
    let (body, opener) = stack.pop().expect("an open block");
    let mut s = opener.expect("a block has its keyword");
    s.block = Some(body);
    stack.last_mut().expect("the top level").0.push(s);
    Ok(())
}
