//! The sandbox policy baked into an executable at compile time (`wasmc --dir ...
//! --max-memory ... --seal`), and the resource limits shared by the compiler, the
//! runtime and `wasmc policy`.
//!
//! The compiler writes [`Policy::encode`]'s bytes into the section [`POLICY_SECTION`]
//! of the object and points [`crate::ModuleDescriptor::policy`] at them; the runtime
//! decodes them at start-up; `wasmc policy EXE` finds the section by name in the
//! linked executable (any target) without running it. The magic and format version
//! in front let a reader refuse a section it does not understand instead of
//! misreading it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Name of the object (and executable) section holding the encoded policy.
pub const POLICY_SECTION: &str = ".wasmc_policy";

/// First bytes of an encoded policy.
pub const POLICY_MAGIC: &[u8; 8] = b"WASMCPOL";

/// Version of the encoding after the magic; bumped when [`Policy`] changes shape.
pub const POLICY_FORMAT: u32 = 2;

/// Everything an executable applies on every run, whatever its command line says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// A sealed executable takes no runtime options: every argument goes to the
    /// program (including `--dir=/`, `--env=X` and `--`).
    pub sealed: bool,
    /// The program's `argv[0]` (default: the executable's name as invoked).
    pub argv0: Option<String>,
    /// Preopened directories, in order (they come before those given at run time).
    pub dirs: Vec<DirGrant>,
    /// Environment variables, in order (before those given at run time).
    pub env: Vec<EnvGrant>,
    pub limits: Limits,
    /// Where the executable came from (shown by `wasmc policy`).
    pub build: BuildInfo,
}

/// A directory the program may use: `host` (relative paths are resolved against the
/// working directory at run time) seen by the program as `guest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirGrant {
    pub host: String,
    pub guest: String,
}

/// One environment variable of the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvGrant {
    /// `NAME=VALUE`, fixed at compile time.
    Set { name: String, value: String },
    /// `NAME`: the host's value at run time, if the host has one (an allow-list).
    Inherit { name: String },
}

impl EnvGrant {
    pub fn name(&self) -> &str {
        match self {
            EnvGrant::Set { name, .. } | EnvGrant::Inherit { name } => name,
        }
    }
}

/// Resource limits. `None` means "no limit beyond wasmc's own implementation limits".
/// Run-time options may only tighten a baked limit ([`Limits::tighten`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Bytes per linear memory: `memory.grow` beyond it returns -1, and a memory whose
    /// minimum exceeds it fails to instantiate.
    pub max_memory: Option<u64>,
    /// Elements per table: `table.grow` beyond it returns -1, and a table whose
    /// minimum exceeds it fails to instantiate.
    pub max_table_elements: Option<u64>,
    /// Size of the wasm stack in bytes (default [`DEFAULT_WASM_STACK`]); exceeding it
    /// is the usual stack-overflow trap.
    pub max_wasm_stack: Option<u64>,
    /// Wall-clock limit of the whole run, in nanoseconds: the program stops with
    /// [`crate::Trap::Interrupt`].
    pub timeout_ns: Option<u64>,
    /// Budget of executed wasm operations (only for modules compiled with fuel
    /// metering, see [`crate::ModuleInfo::fuel_metering`]): running out is
    /// [`crate::Trap::OutOfFuel`].
    pub fuel: Option<u64>,
    /// Bytes of GC objects (structs, arrays, exceptions) a thread may hold (default
    /// [`DEFAULT_GC_HEAP`]): an allocation past it that a collection cannot make
    /// room for is [`crate::Trap::GcHeapOutOfMemory`].
    pub max_gc_heap: Option<u64>,
}

/// The GC heap bound when no limit is given.
pub const DEFAULT_GC_HEAP: u64 = 1 << 30;

/// The wasm stack when no limit is given (wasmtime's default is 512 KiB, but recursive
/// C and Rust programs want more).
pub const DEFAULT_WASM_STACK: u64 = 8 << 20;

/// Smallest wasm stack accepted: below this even the runtime's own entry frames do not
/// fit, so every program would overflow at once.
pub const MIN_WASM_STACK: u64 = 64 << 10;

/// Largest wasm stack accepted (the stack is reserved up front on its own thread).
pub const MAX_WASM_STACK: u64 = 4 << 30;

/// One limit that a run-time option tried to loosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoosenedLimit {
    /// The option, e.g. `--max-memory`.
    pub option: &'static str,
    /// The baked value, formatted as the option takes it.
    pub baked: String,
    /// The value asked for at run time, formatted the same way.
    pub requested: String,
}

impl std::fmt::Display for LoosenedLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} would loosen the limit built into this executable ({} {}); run-time \
             options can only tighten it",
            self.option, self.requested, self.option, self.baked
        )
    }
}

impl Limits {
    /// The limits that apply when `runtime` (options given on the command line) is
    /// combined with `self` (baked in): a run-time value applies where it is at most
    /// the baked one (or nothing is baked); a looser one is an error naming both.
    pub fn tighten(&self, runtime: &Limits) -> Result<Limits, LoosenedLimit> {
        fn pick(
            option: &'static str,
            baked: Option<u64>,
            requested: Option<u64>,
            format: fn(u64) -> String,
        ) -> Result<Option<u64>, LoosenedLimit> {
            match (baked, requested) {
                (Some(b), Some(r)) if r > b => Err(LoosenedLimit {
                    option,
                    baked: format(b),
                    requested: format(r),
                }),
                (_, Some(r)) => Ok(Some(r)),
                (b, None) => Ok(b),
            }
        }
        Ok(Limits {
            max_memory: pick("--max-memory", self.max_memory, runtime.max_memory, |v| {
                format_size(v)
            })?,
            max_table_elements: pick(
                "--max-table-elements",
                self.max_table_elements,
                runtime.max_table_elements,
                |v| v.to_string(),
            )?,
            max_wasm_stack: pick(
                "--max-wasm-stack",
                self.max_wasm_stack,
                runtime.max_wasm_stack,
                format_size,
            )?,
            timeout_ns: pick("--timeout", self.timeout_ns, runtime.timeout_ns, |v| {
                format_duration(Duration::from_nanos(v))
            })?,
            fuel: pick("--fuel", self.fuel, runtime.fuel, |v| v.to_string())?,
            max_gc_heap: pick(
                "--max-gc-heap",
                self.max_gc_heap,
                runtime.max_gc_heap,
                format_size,
            )?,
        })
    }

    /// The GC heap bound to use.
    pub fn gc_heap(&self) -> u64 {
        self.max_gc_heap.unwrap_or(DEFAULT_GC_HEAP)
    }

    /// The wasm stack size to use.
    pub fn wasm_stack(&self) -> u64 {
        self.max_wasm_stack.unwrap_or(DEFAULT_WASM_STACK)
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_ns.map(Duration::from_nanos)
    }

    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// Provenance of an executable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// Version of the wasmc that built it.
    pub wasmc_version: String,
    /// Target triple.
    pub target: String,
    /// SHA-256 of the module it was compiled from (the binary module; for a `.wat`
    /// input, of the text file), lowercase hex.
    pub module_sha256: String,
    /// Whether the code counts fuel (compiled with `--fuel`).
    pub fuel_metering: bool,
}

/// Why an encoded policy could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The bytes do not start with [`POLICY_MAGIC`].
    NotAPolicy,
    /// Written by a wasmc with another encoding version.
    UnknownFormat(u32),
    /// The magic is right but the rest does not decode.
    Corrupt(String),
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::NotAPolicy => f.write_str("not a wasmc policy"),
            PolicyError::UnknownFormat(v) => write!(
                f,
                "policy format {v} is not understood by this wasmc (it reads format \
                 {POLICY_FORMAT})"
            ),
            PolicyError::Corrupt(e) => write!(f, "the policy is damaged: {e}"),
        }
    }
}

impl std::error::Error for PolicyError {}

impl Policy {
    /// Magic, format version (little-endian u32), then the postcard encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = POLICY_MAGIC.to_vec();
        out.extend_from_slice(&POLICY_FORMAT.to_le_bytes());
        let body = postcard::to_allocvec(self).expect("a policy always serializes");
        out.extend_from_slice(&body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Policy, PolicyError> {
        let rest = bytes
            .strip_prefix(POLICY_MAGIC.as_slice())
            .ok_or(PolicyError::NotAPolicy)?;
        let (version, body) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| PolicyError::Corrupt("truncated".into()))?;
        let version = u32::from_le_bytes(*version);
        if version != POLICY_FORMAT {
            return Err(PolicyError::UnknownFormat(version));
        }
        // The linker may pad the section: trailing bytes after the encoding are fine.
        let (policy, _) =
            postcard::take_from_bytes(body).map_err(|e| PolicyError::Corrupt(e.to_string()))?;
        Ok(policy)
    }
}

impl Policy {
    /// A human-readable account of the policy, one `label: value` line per item (what
    /// `wasmc policy` and an executable's `--wasmc-help` print).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let mut line = |label: &str, value: &str| {
            out.push_str(&format!("{label:<20}{value}\n"));
        };
        line(
            "sealed:",
            if self.sealed {
                "yes (every argument goes to the program; no runtime options)"
            } else {
                "no (runtime options accepted before the program's arguments)"
            },
        );
        line(
            "argv0:",
            self.argv0
                .as_deref()
                .unwrap_or("(the name the executable is run by)"),
        );
        if self.dirs.is_empty() {
            line("dirs:", "(none)");
        }
        for (i, d) in self.dirs.iter().enumerate() {
            let relative = if d.host.starts_with('/') {
                ""
            } else {
                " (relative to the working directory at run time)"
            };
            let text = format!("{} -> {}{relative}", d.host, d.guest);
            line(if i == 0 { "dirs:" } else { "" }, &text);
        }
        if self.env.is_empty() {
            line("env:", "(none)");
        }
        for (i, e) in self.env.iter().enumerate() {
            let text = match e {
                EnvGrant::Set { name, value } => format!("{name}={value}"),
                EnvGrant::Inherit { name } => format!("{name} (the host's value, if set)"),
            };
            line(if i == 0 { "env:" } else { "" }, &text);
        }
        let l = &self.limits;
        let or_default = |v: Option<String>, default: &str| v.unwrap_or_else(|| default.into());
        line(
            "max-memory:",
            &or_default(
                l.max_memory.map(format_size),
                "(no limit; 4G per 32-bit memory)",
            ),
        );
        line(
            "max-table-elements:",
            &or_default(l.max_table_elements.map(|v| v.to_string()), "(no limit)"),
        );
        line(
            "max-wasm-stack:",
            &or_default(
                l.max_wasm_stack.map(format_size),
                &format!("(default {})", format_size(DEFAULT_WASM_STACK)),
            ),
        );
        line(
            "max-gc-heap:",
            &or_default(
                l.max_gc_heap.map(format_size),
                &format!("(default {})", format_size(DEFAULT_GC_HEAP)),
            ),
        );
        line(
            "timeout:",
            &or_default(l.timeout().map(format_duration), "(none)"),
        );
        let fuel = match (l.fuel, self.build.fuel_metering) {
            (Some(f), _) => f.to_string(),
            (None, true) => "(metered, no limit)".into(),
            (None, false) => "(not metered)".into(),
        };
        line("fuel:", &fuel);
        let b = &self.build;
        if !b.target.is_empty() {
            line("target:", &b.target);
        }
        if !b.wasmc_version.is_empty() {
            line("built by:", &format!("wasmc {}", b.wasmc_version));
        }
        if !b.module_sha256.is_empty() {
            line("module sha256:", &b.module_sha256);
        }
        out
    }
}

/// Parses a size: a number of bytes with an optional `K`, `M`, `G` or `T` suffix
/// (binary multiples; `KiB`, `MB`... and lowercase are accepted too). Examples:
/// `512M`, `1G`, `65536`, `64KiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, suffix) = t.split_at(digits_end);
    let bad = || {
        format!(
            "invalid size '{text}': expected a number of bytes with an optional K, M, G or T suffix (e.g. 512M)"
        )
    };
    if number.is_empty() {
        return Err(bad());
    }
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("invalid size '{text}': too large"))
}

/// The shortest exact spelling of a size in the units [`parse_size`] takes.
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes != 0 && bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Parses a duration: a positive number with a unit, `ms`, `s`, `m` or `h` (a bare
/// number is seconds). Fractions are allowed: `500ms`, `30s`, `1.5s`, `5m`, `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "invalid duration '{text}': expected a positive number with a unit: ms, s, m or h (e.g. 500ms, 30s, 5m)"
        )
    };
    let number_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(number_end);
    let seconds_per_unit = match unit.trim() {
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let n: f64 = number.parse().map_err(|_| bad())?;
    let seconds = n * seconds_per_unit;
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(bad());
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("invalid duration '{text}': too long"))
}

/// A duration in the units [`parse_duration`] takes (`30s`, `1500ms`, `5m`).
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns.is_multiple_of(3_600_000_000_000) && ns > 0 {
        format!("{}h", ns / 3_600_000_000_000)
    } else if ns.is_multiple_of(60_000_000_000) && ns > 0 {
        format!("{}m", ns / 60_000_000_000)
    } else if ns.is_multiple_of(1_000_000_000) {
        format!("{}s", ns / 1_000_000_000)
    } else if ns.is_multiple_of(1_000_000) {
        format!("{}ms", ns / 1_000_000)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("2t"), Ok(2 << 40));
        for bad in [
            "12Q",
            "",
            "M",
            "-1M",
            "1.5G",
            "99999999999999999999",
            "16777216T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        for v in [0, 1, 1000, 1024, 512 << 20, 3 << 30, (1 << 20) + 1] {
            assert_eq!(parse_size(&format_size(v)), Ok(v));
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        for bad in ["-1s", "0s", "", "s", "1x", "1e9999s", "nan", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for d in ["30s", "1500ms", "5m", "2h", "1ms"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
    }

    #[test]
    fn tighten_only() {
        let baked = Limits {
            max_memory: Some(512 << 20),
            timeout_ns: Some(30_000_000_000),
            ..Limits::default()
        };
        let tighter = Limits {
            max_memory: Some(1 << 20),
            max_wasm_stack: Some(1 << 20),
            ..Limits::default()
        };
        let got = baked.tighten(&tighter).unwrap();
        assert_eq!(got.max_memory, Some(1 << 20));
        assert_eq!(got.max_wasm_stack, Some(1 << 20));
        assert_eq!(got.timeout_ns, Some(30_000_000_000));
        let looser = Limits {
            timeout_ns: Some(60_000_000_000),
            ..Limits::default()
        };
        let err = baked.tighten(&looser).unwrap_err();
        assert_eq!(err.option, "--timeout");
        assert_eq!(err.baked, "30s");
        assert_eq!(err.requested, "1m");
        // Equal is not looser.
        assert!(baked.tighten(&baked).is_ok());
    }

    #[test]
    fn policy_round_trip_and_refusals() {
        let policy = Policy {
            sealed: true,
            argv0: Some("tool".into()),
            dirs: vec![DirGrant {
                host: "/srv/data".into(),
                guest: "/data".into(),
            }],
            env: vec![
                EnvGrant::Set {
                    name: "MODE".into(),
                    value: "fast".into(),
                },
                EnvGrant::Inherit {
                    name: "LANG".into(),
                },
            ],
            limits: Limits {
                fuel: Some(1000),
                ..Limits::default()
            },
            build: BuildInfo {
                wasmc_version: "0.1.0".into(),
                target: "x86_64-unknown-linux-gnu".into(),
                module_sha256: "ab".repeat(32),
                fuel_metering: true,
            },
        };
        let mut bytes = policy.encode();
        assert_eq!(Policy::decode(&bytes), Ok(policy.clone()));
        bytes.extend_from_slice(&[0; 16]);
        assert_eq!(Policy::decode(&bytes), Ok(policy));
        assert_eq!(Policy::decode(b"hello"), Err(PolicyError::NotAPolicy));
        let mut other = POLICY_MAGIC.to_vec();
        other.extend_from_slice(&7u32.to_le_bytes());
        assert_eq!(Policy::decode(&other), Err(PolicyError::UnknownFormat(7)));
        let mut cut = POLICY_MAGIC.to_vec();
        cut.extend_from_slice(&POLICY_FORMAT.to_le_bytes());
        cut.push(1);
        assert!(matches!(Policy::decode(&cut), Err(PolicyError::Corrupt(_))));
    }
}
