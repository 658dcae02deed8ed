//! The records a worker process (one spec file) writes on its stdout for the driver.
//!
//! One record per line, each starting with [`PREFIX`] so that anything else a worker
//! happens to print is ignored. Records are written as soon as they are known, so that
//! when a worker dies (a crash in generated code, a timeout) the driver still knows
//! what ran before.

use std::io::Write;

/// Marks a protocol line.
pub const PREFIX: &str = "@wasmc-wast ";

/// One event of a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Number of directives in the file (sent once, after parsing).
    Total(u64),
    /// The whole file is skipped, with the reason.
    Skip(String),
    /// One directive passed.
    Pass,
    /// One directive failed: `line:col: message`.
    Fail(String),
    /// The worker finished the file normally.
    Done,
}

impl Record {
    fn encode(&self) -> String {
        match self {
            Record::Total(n) => format!("{PREFIX}total {n}"),
            Record::Skip(reason) => format!("{PREFIX}skip {}", one_line(reason)),
            Record::Pass => format!("{PREFIX}pass"),
            Record::Fail(message) => format!("{PREFIX}fail {}", one_line(message)),
            Record::Done => format!("{PREFIX}done"),
        }
    }

    /// Parses one line of worker output; `None` for lines that are not records.
    pub fn decode(line: &str) -> Option<Record> {
        let rest = line.strip_prefix(PREFIX)?;
        let (tag, arg) = rest.split_once(' ').unwrap_or((rest, ""));
        match tag {
            "total" => arg.parse().ok().map(Record::Total),
            "skip" => Some(Record::Skip(arg.to_string())),
            "pass" => Some(Record::Pass),
            "fail" => Some(Record::Fail(arg.to_string())),
            "done" => Some(Record::Done),
            _ => None,
        }
    }

    /// Writes the record to stdout and flushes, so that it survives a later crash.
    pub fn emit(&self) {
        let mut out = std::io::stdout().lock();
        // A closed pipe means the driver is gone; there is nobody left to tell.
        let _ = writeln!(out, "{}", self.encode());
        let _ = out.flush();
    }
}

/// Messages travel on one line.
fn one_line(s: &str) -> String {
    s.replace('\r', "").replace('\n', " | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        for r in [
            Record::Total(12),
            Record::Skip("gc: not supported".into()),
            Record::Pass,
            Record::Fail("3:4: expected i32 1, got i32 2".into()),
            Record::Done,
        ] {
            assert_eq!(Record::decode(&r.encode()), Some(r));
        }
        assert_eq!(Record::decode("i32: 42"), None);
        assert_eq!(
            Record::decode(&Record::Fail("a\nb".into()).encode()),
            Some(Record::Fail("a | b".into()))
        );
    }
}
