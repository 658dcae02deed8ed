//! Reads the folded text form of legacy exception handling, which the `wast`
//! parser (since release 200) no longer accepts:
//!
//! ```text
//! (try $l? blocktype (do instr*) (catch $tag instr*)* (catch_all instr*)?)
//! (try $l? blocktype (do instr*) (delegate $label))
//! ```
//!
//! `wast` 263 still parses and encodes the *flat* legacy instructions (`try`,
//! `catch`, `catch_all`, `delegate`, `rethrow`, `end`), so [`unfold`] rewrites each
//! folded `try` into its flat form and everything else of the script goes through
//! the same parser as every other spec file:
//!
//! ```text
//! (try (result i32) (do A) (catch $e B))  ->  try (result i32) A catch $e B end
//! ```
//!
//! Chosen over a renamed old `wast` release (69.0.1 is the last to read these
//! files) because the rewrite is small and total, keeps one parser and one set of
//! script types in the harness, and does not pin a 2023 parser in the lock file.
//! The rewrite keeps every line break where it was, so positions reported in the
//! rewritten text are on the same lines as in the file. A misplaced clause
//! (`(catch …)` outside a `try`, a clause after `catch_all` or `delegate`, a `try`
//! without `do`) is an error, as the legacy text grammar makes it.

/// A token of the text format, as far as the rewrite needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    LParen,
    RParen,
    /// Keywords, identifiers, numbers: anything up to white space or a delimiter.
    Atom(&'a str),
    /// A string literal, quotes included.
    Str(&'a str),
    /// White space and comments, copied unchanged.
    Trivia(&'a str),
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token<'_>)>, String> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let token = match bytes[i] {
            b'(' if bytes.get(i + 1) == Some(&b';') => {
                // Block comments nest.
                let mut depth = 0;
                loop {
                    if bytes[i..].starts_with(b"(;") {
                        depth += 1;
                        i += 2;
                    } else if bytes[i..].starts_with(b";)") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else if i >= bytes.len() {
                        return Err(format!("unterminated block comment at byte {start}"));
                    } else {
                        i += 1;
                    }
                }
                Token::Trivia(&text[start..i])
            }
            b'(' => {
                i += 1;
                Token::LParen
            }
            b')' => {
                i += 1;
                Token::RParen
            }
            b';' if bytes.get(i + 1) == Some(&b';') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                Token::Trivia(&text[start..i])
            }
            b'"' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(format!("unterminated string at byte {start}")),
                        Some(b'\\') => i += 2,
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                Token::Str(&text[start..i.min(bytes.len())])
            }
            b if b.is_ascii_whitespace() => {
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                Token::Trivia(&text[start..i])
            }
            _ => {
                while i < bytes.len()
                    && !bytes[i].is_ascii_whitespace()
                    && !matches!(bytes[i], b'(' | b')' | b'"')
                    && !bytes[i..].starts_with(b";;")
                {
                    i += 1;
                }
                Token::Atom(&text[start..i])
            }
        };
        tokens.push((start, token));
    }
    Ok(tokens)
}

/// Where a folded `try` is: which clauses may still follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TryStage {
    /// Before `(do …)`: the label and the block type.
    Header,
    /// After `(do …)`: any clause, or the end.
    Clauses,
    /// After a `(catch …)`: more `catch`, `catch_all`, or the end.
    Catches,
    /// After `(catch_all …)`: only the closing parenthesis.
    AfterCatchAll,
    /// After `(delegate …)`, which is also the end of the `try`.
    AfterDelegate,
}

enum Frame {
    /// Any other parenthesized form, kept as it is.
    Kept,
    Try(TryStage),
    /// `(do …)`, `(catch …)`, `(catch_all …)` or `(delegate …)`: parentheses removed.
    Clause,
}

const CLAUSES: [&str; 4] = ["do", "catch", "catch_all", "delegate"];

/// Rewrites every folded legacy `try` of `text` (a script or a module) into flat
/// instructions; text without one comes back unchanged.
pub fn unfold(text: &str) -> Result<String, String> {
    let tokens = tokenize(text)?;
    let mut out = String::with_capacity(text.len() + 64);
    let mut frames: Vec<Frame> = Vec::new();
    let position = |offset: usize| {
        let line = text[..offset].matches('\n').count() + 1;
        let column = offset - text[..offset].rfind('\n').map_or(0, |n| n + 1) + 1;
        format!("{line}:{column}")
    };
    let mut i = 0;
    while i < tokens.len() {
        let (offset, token) = tokens[i];
        i += 1;
        match token {
            Token::LParen => {
                let keyword = tokens[i..].iter().find_map(|(_, t)| match t {
                    Token::Trivia(_) => None,
                    Token::Atom(a) => Some(*a),
                    _ => Some(""),
                });
                let keyword = keyword.unwrap_or("");
                let in_try = match frames.last_mut() {
                    Some(Frame::Try(stage)) => Some(stage),
                    _ => None,
                };
                let frame = match (in_try, keyword) {
                    (Some(TryStage::Header), "type" | "param" | "result") => Frame::Kept,
                    (Some(stage), "do") if *stage == TryStage::Header => {
                        *stage = TryStage::Clauses;
                        Frame::Clause
                    }
                    (Some(stage @ (TryStage::Clauses | TryStage::Catches)), "catch") => {
                        *stage = TryStage::Catches;
                        Frame::Clause
                    }
                    (Some(stage @ (TryStage::Clauses | TryStage::Catches)), "catch_all") => {
                        *stage = TryStage::AfterCatchAll;
                        Frame::Clause
                    }
                    // `delegate` replaces the catch clauses and ends the `try`.
                    (Some(stage @ TryStage::Clauses), "delegate") => {
                        *stage = TryStage::AfterDelegate;
                        Frame::Clause
                    }
                    (Some(stage), _) => {
                        return Err(format!(
                            "{}: unexpected `({keyword}` in a folded `try` ({})",
                            position(offset),
                            match stage {
                                TryStage::Header => "expected `(do`",
                                TryStage::Clauses =>
                                    "expected `(catch`, `(catch_all` or `(delegate`",
                                TryStage::Catches => "expected `(catch` or `(catch_all`",
                                TryStage::AfterCatchAll => "nothing may follow `catch_all`",
                                TryStage::AfterDelegate => "nothing may follow `delegate`",
                            }
                        ));
                    }
                    (None, "try") => Frame::Try(TryStage::Header),
                    (None, k) if CLAUSES.contains(&k) => {
                        return Err(format!(
                            "{}: `({k}` outside a folded `try`",
                            position(offset)
                        ));
                    }
                    (None, _) => Frame::Kept,
                };
                match frame {
                    Frame::Kept => out.push('('),
                    Frame::Try(_) => out.push(' '),
                    Frame::Clause => {
                        // `(do` disappears; `(catch` etc. become the flat keyword.
                        out.push(' ');
                        if keyword == "do" {
                            // Skip to the keyword and blank it, keeping the trivia.
                            while let Some((_, t)) = tokens.get(i) {
                                i += 1;
                                match t {
                                    Token::Trivia(s) => out.push_str(s),
                                    _ => {
                                        out.push_str("  ");
                                        break;
                                    }
                                }
                            }
                        }
                    }
                }
                frames.push(frame);
            }
            Token::RParen => match frames.pop() {
                None | Some(Frame::Kept) => out.push(')'),
                Some(Frame::Clause) => out.push(' '),
                Some(Frame::Try(TryStage::Header)) => {
                    return Err(format!(
                        "{}: folded `try` without `(do …)`",
                        position(offset)
                    ));
                }
                Some(Frame::Try(TryStage::AfterDelegate)) => out.push(' '),
                Some(Frame::Try(_)) => out.push_str("end"),
            },
            Token::Atom(a) => {
                if let Some(Frame::Try(stage)) = frames.last() {
                    // Only the label may appear between `(try` and its clauses.
                    let label = *stage == TryStage::Header && a.starts_with('$');
                    if a != "try" && !label {
                        return Err(format!(
                            "{}: unexpected `{a}` in a folded `try`",
                            position(offset)
                        ));
                    }
                }
                out.push_str(a);
            }
            Token::Str(s) => {
                if let Some(Frame::Try(_)) = frames.last() {
                    return Err(format!(
                        "{}: unexpected string in a folded `try`",
                        position(offset)
                    ));
                }
                out.push_str(s);
            }
            Token::Trivia(s) => out.push_str(s),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::unfold;

    fn flat(text: &str) -> String {
        unfold(text)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn unfolds_catch_clauses() {
        assert_eq!(
            flat(
                "(func (try $t (result i32) (do (i32.const 1)) (catch $e (i32.const 2)) (catch_all (i32.const 3))))"
            ),
            "(func try $t (result i32) (i32.const 1) catch $e (i32.const 2) catch_all (i32.const 3) end)"
        );
        assert_eq!(flat("(try (do) (catch $e0))"), "try catch $e0 end");
    }

    #[test]
    fn unfolds_delegate_and_nesting() {
        assert_eq!(
            flat("(try $t (do (try (do (call $f)) (delegate $t))) (catch_all))"),
            "try $t try (call $f) delegate $t catch_all end"
        );
    }

    #[test]
    fn keeps_lines_strings_comments_and_other_text() {
        let text = "(module ;; (try\n  (func (; (do ;) (try (do\n (nop)) (catch_all)) \"(try\"))";
        let out = unfold(text).unwrap();
        assert_eq!(out.lines().count(), text.lines().count());
        assert!(out.contains(";; (try\n"));
        assert!(out.contains("(; (do ;)"));
        assert!(out.contains("\"(try\""));
        assert_eq!(
            unfold("(module (func (block (nop))))").unwrap(),
            "(module (func (block (nop))))"
        );
        // Flat legacy code is already what the parser reads.
        assert_eq!(unfold("try catch_all end").unwrap(), "try catch_all end");
    }

    #[test]
    fn rejects_misplaced_clauses() {
        for bad in [
            "(module (func (catch_all)))",
            "(module (tag $e) (func (catch $e)))",
            "(module (func (delegate 0)))",
            "(module (tag $e) (func (try (do) (catch $e) (delegate 0))))",
            "(module (func (try (do) (catch_all) (delegate 0))))",
            "(module (func (try (do) (delegate) (delegate 0))))",
            "(module (func (try (catch_all))))",
            "(module (func (try (nop) (do))))",
            "(module (func (try (do) (catch_all) (catch_all))))",
            "(module (func (try)))",
        ] {
            assert!(unfold(bad).is_err(), "accepted {bad}");
        }
    }
}
