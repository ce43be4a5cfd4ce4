//! Rendering for people (text, with optional colour) and machines (JSON).
//!
//! One file per command: its `text`, and its JSON document where the document is not the
//! command's result itself (`show`, `profiles`, a failed host of a fleet). [`layout`]
//! holds what the texts share (padded columns, tables, findings); [`documents`] the error
//! document every command writes with `--format json`. Report imports the results it
//! renders (plan, doctor, status, apply); nothing below it imports report.

pub mod apply;
pub mod doctor;
pub mod documents;
pub use crate::escape;
pub mod explain;
pub mod fleet;
pub mod kubernetes;
pub mod layout;
pub mod plan;
pub mod profiles;
pub mod recommend;
pub mod rollback;
pub mod show;
pub mod status;

pub use escape::safe;

use std::io::IsTerminal;

/// Colours on or off, decided once from `--color`, `NO_COLOR` and whether stdout is a
/// terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
    pub width: usize,
}

impl Style {
    pub fn plain(width: usize) -> Self {
        Style { color: false, width }
    }

    /// `--color always|never|auto`; auto is anstream's judgement of stdout: a terminal,
    /// and neither `NO_COLOR` nor `TERM=dumb` (`CLICOLOR_FORCE` forces colour).
    pub fn detect(choice: &str) -> Self {
        let stdout = std::io::stdout();
        let tty = stdout.is_terminal();
        let color = match choice {
            "always" => true,
            "never" => false,
            _ => !matches!(
                anstream::AutoStream::choice(&stdout),
                anstream::ColorChoice::Never
            ),
        };
        Style {
            color,
            width: terminal_width(tty),
        }
    }

    fn paint(&self, style: anstyle::Style, text: &str) -> String {
        if self.color && !text.is_empty() {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }
    pub fn bold(&self, t: &str) -> String {
        self.paint(anstyle::Style::new().bold(), t)
    }
    pub fn red(&self, t: &str) -> String {
        self.paint(anstyle::AnsiColor::Red.on_default(), t)
    }
    pub fn green(&self, t: &str) -> String {
        self.paint(anstyle::AnsiColor::Green.on_default(), t)
    }
    pub fn yellow(&self, t: &str) -> String {
        self.paint(anstyle::AnsiColor::Yellow.on_default(), t)
    }
    pub fn cyan(&self, t: &str) -> String {
        self.paint(anstyle::AnsiColor::Cyan.on_default(), t)
    }
    pub fn dim(&self, t: &str) -> String {
        self.paint(anstyle::Style::new().dimmed(), t)
    }
}

/// `COLUMNS` if set, else the terminal's width, else 100; never below 60.
fn terminal_width(tty: bool) -> usize {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
    {
        return n.max(60);
    }
    if tty
        && let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size_of(std::io::stdout())
        && w > 0
    {
        return usize::from(w).max(60);
    }
    100
}

/// Pretty JSON with a final newline, with no raw terminal controls ([`escape::json`]).
pub fn json<T: serde::Serialize>(value: &T) -> String {
    let mut s = escape::json(serde_json::to_string_pretty(value).expect("plain data serialises"));
    s.push('\n');
    s
}

/// One JSON document on one line (JSON Lines), escaped like [`json`].
pub fn json_line<T: serde::Serialize>(value: &T) -> String {
    escape::json(serde_json::to_string(value).expect("plain data serialises"))
}

/// Greedy word wrap to `width` columns (at least 20).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(20);
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in unbreakable_words(text) {
        let word = word.as_str();
        let wlen = word.chars().count();
        let clen = cur.chars().count();
        if clen > 0 && clen + 1 + wlen > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Words for wrapping, keeping grouped numbers (`1 032 000`) in one piece.
fn unbreakable_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in text.split_whitespace() {
        let group = w.len() >= 3
            && w.chars().take(3).all(|c| c.is_ascii_digit())
            && !w.chars().nth(3).is_some_and(|c| c.is_ascii_digit());
        match words.last_mut() {
            Some(prev) if group && prev.chars().last().is_some_and(|c| c.is_ascii_digit()) => {
                prev.push(' ');
                prev.push_str(w);
            }
            _ => words.push(w.to_string()),
        }
    }
    words
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrap_keeps_grouped_numbers_together() {
        let lines = super::wrap("already covers 1 032 000 fds + 704 512 open now", 30);
        assert_eq!(lines, ["already covers 1 032 000 fds +", "704 512 open now"]);
    }
}
