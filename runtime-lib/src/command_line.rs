//! The command line of a generated executable, combined with the policy baked into
//! it at compile time ([`Policy`]).
//!
//! An unsealed executable reads runtime options first (`--dir`, `--env`, limits...);
//! parsing stops at `--` (dropped) or at the first argument that is not a runtime
//! option, and that argument and everything after it are the program's arguments.
//! Directories and variables given at run time come after the baked ones; limits
//! given at run time may only tighten the baked ones ([`Limits::tighten`]). A sealed
//! executable reads no options at all: every argument is the program's.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::abi::policy::{
    DirGrant, EnvGrant, Limits, MAX_WASM_STACK, MIN_WASM_STACK, Policy, format_size,
    parse_duration, parse_size,
};
use crate::wasi::{WasiCtx, WasiCtxBuilder};

/// What the executable was asked to do.
#[derive(Debug)]
pub enum Invocation {
    /// Run the program.
    Run(RunConfig),
    /// `--wasmc-help`: print the runtime options and the baked policy, run nothing.
    Help,
}

/// Everything a run needs, baked and run-time options merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// The program's arguments, `argv[0]` first.
    pub args: Vec<Vec<u8>>,
    /// Preopens in order; `baked` tells error messages where a directory came from.
    pub dirs: Vec<Preopen>,
    /// The program's environment variables (name, value), in order.
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    pub guest: String,
    pub baked: bool,
}

/// A problem with the command line: the executable prints `error: ...` and exits 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The runtime options an unsealed executable accepts, for `--wasmc-help`.
pub const OPTIONS_HELP: &str = "\
Runtime options (before the program's arguments; `--` ends them):
  --dir HOST[::GUEST]        grant the host directory HOST, seen by the program as GUEST
                             (default: the same name); added to the built-in ones
  --mapdir GUEST::HOST       older wasmtime spelling of --dir HOST::GUEST
  --env NAME=VALUE           set an environment variable for the program
  --env NAME                 pass the host's NAME through, if it is set
  --argv0 NAME               the program's argv[0] (default: this executable's name)
  --max-memory SIZE          at most SIZE bytes per linear memory (K, M, G suffixes)
  --max-table-elements N     at most N elements per table
  --max-wasm-stack SIZE      the wasm stack size (default 8M)
  --max-gc-heap SIZE         at most SIZE bytes of GC objects (default 1G)
  --timeout DURATION         stop the program after DURATION (500ms, 30s, 5m):
                             `wasm trap: interrupt`, exit status 134
  --fuel N                   stop after N wasm operations (only if built with --fuel)
  --wasmc-help               print this help and the built-in policy, run nothing
Limits given here can only tighten those built into the executable.
Everything from the first argument that is not an option on is the program's:
scripts that pass untrusted arguments must put `--` first.";

/// Combines `policy` with the command line `args` (after the executable's own name,
/// which is `exe_name`). `fuel_metering` tells whether the code counts fuel.
pub fn parse(
    policy: &Policy,
    fuel_metering: bool,
    exe_name: &OsStr,
    args: Vec<OsString>,
) -> Result<Invocation, UsageError> {
    let mut dirs: Vec<Preopen> = policy
        .dirs
        .iter()
        .map(|d| Preopen {
            host: PathBuf::from(&d.host),
            guest: d.guest.clone(),
            baked: true,
        })
        .collect();
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for grant in &policy.env {
        match grant {
            EnvGrant::Set { name, value } => env.push(env_entry(name.as_bytes(), value.as_bytes())),
            EnvGrant::Inherit { name } => {
                if let Some(value) = std::env::var_os(name) {
                    env.push(env_entry(name.as_bytes(), value.as_bytes()));
                }
            }
        }
    }
    let mut argv0 = policy.argv0.as_ref().map(|a| a.as_bytes().to_vec());
    let mut requested = Limits::default();

    let mut args = args.into_iter().peekable();
    if !policy.sealed {
        while let Some(arg) = args.peek() {
            let bytes = arg.as_bytes();
            if bytes == b"--" {
                args.next();
                break;
            }
            if bytes == b"--wasmc-help" {
                return Ok(Invocation::Help);
            }
            let Some((option, inline)) = split_option(bytes) else {
                break; // the program's arguments start here
            };
            let inline = inline.map(|v| OsStr::from_bytes(v).to_os_string());
            args.next();
            let value = match inline {
                Some(v) => v,
                None => args
                    .next()
                    .ok_or_else(|| UsageError(format!("option '{option}' needs a value")))?,
            };
            let value = value.into_string().map_err(|v| {
                UsageError(format!(
                    "the value of {option} is not valid UTF-8: {}",
                    v.to_string_lossy()
                ))
            })?;
            let usage = |message: String| UsageError(message);
            match option {
                "--dir" => {
                    let (host, guest) = parse_dir(&value).map_err(usage)?;
                    dirs.push(Preopen {
                        host: host.into(),
                        guest,
                        baked: false,
                    });
                }
                "--mapdir" => {
                    let (guest, host) = value
                        .split_once("::")
                        .filter(|(g, h)| !g.is_empty() && !h.is_empty())
                        .ok_or_else(|| {
                            usage(format!(
                                "malformed --mapdir '{value}': expected GUEST::HOST"
                            ))
                        })?;
                    dirs.push(Preopen {
                        host: host.into(),
                        guest: guest.to_string(),
                        baked: false,
                    });
                }
                "--env" => match parse_env(&value).map_err(usage)? {
                    EnvGrant::Set { name, value } => {
                        env.push(env_entry(name.as_bytes(), value.as_bytes()))
                    }
                    EnvGrant::Inherit { name } => {
                        if let Some(v) = std::env::var_os(&name) {
                            env.push(env_entry(name.as_bytes(), v.as_bytes()));
                        }
                    }
                },
                "--argv0" => argv0 = Some(value.into_bytes()),
                "--max-memory" => requested.max_memory = Some(parse_size(&value).map_err(usage)?),
                "--max-table-elements" => {
                    requested.max_table_elements = Some(parse_count(&value).map_err(usage)?)
                }
                "--max-wasm-stack" => {
                    requested.max_wasm_stack = Some(parse_stack_size(&value).map_err(usage)?)
                }
                "--max-gc-heap" => requested.max_gc_heap = Some(parse_size(&value).map_err(usage)?),
                "--timeout" => {
                    let d = parse_duration(&value).map_err(usage)?;
                    requested.timeout_ns = Some(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                }
                "--fuel" => {
                    if !fuel_metering {
                        return Err(usage(
                            "--fuel: this executable was built without fuel metering; rebuild \
                             it with `wasmc --fuel N` to limit fuel"
                                .to_string(),
                        ));
                    }
                    requested.fuel = Some(parse_count(&value).map_err(usage)?);
                }
                _ => unreachable!("split_option only returns known options"),
            }
        }
    }
    let limits = policy
        .limits
        .tighten(&requested)
        .map_err(|e| UsageError(e.to_string()))?;

    let argv0 = argv0.unwrap_or_else(|| exe_name.as_bytes().to_vec());
    let args = std::iter::once(argv0)
        .chain(args.map(OsStringExt::into_vec))
        .collect();
    Ok(Invocation::Run(RunConfig {
        args,
        dirs,
        env,
        limits,
    }))
}

impl RunConfig {
    /// Opens the preopened directories and builds the program's WASI state. A
    /// directory that cannot be opened is an error naming it.
    pub fn wasi_ctx(&self) -> Result<WasiCtx, UsageError> {
        let mut builder = WasiCtxBuilder::new();
        for arg in &self.args {
            builder = builder.arg(arg);
        }
        for (name, value) in &self.env {
            builder = builder.env(name, value);
        }
        for dir in &self.dirs {
            builder = builder.preopen_dir(&dir.host, &dir.guest).map_err(|e| {
                if dir.baked {
                    UsageError(format!("{e} (a directory built into this executable)"))
                } else {
                    UsageError(e)
                }
            })?;
        }
        Ok(builder.build())
    }
}

/// `HOST` or `HOST::GUEST` (both non-empty), for `--dir` here and in `wasmc`.
pub fn parse_dir(value: &str) -> Result<(String, String), String> {
    let (host, guest) = match value.split_once("::") {
        Some((host, guest)) => (host, guest),
        None => (value, value),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!(
            "malformed --dir '{value}': expected HOST or HOST::GUEST"
        ));
    }
    Ok((host.to_string(), guest.to_string()))
}

/// `NAME=VALUE` or `NAME` (a variable passed through), for `--env` here and in `wasmc`.
pub fn parse_env(value: &str) -> Result<EnvGrant, String> {
    let (name, fixed) = match value.split_once('=') {
        Some((name, v)) => (name, Some(v)),
        None => (value, None),
    };
    if name.is_empty() {
        return Err(format!(
            "malformed --env '{value}': expected NAME=VALUE or NAME"
        ));
    }
    Ok(match fixed {
        Some(v) => EnvGrant::Set {
            name: name.to_string(),
            value: v.to_string(),
        },
        None => EnvGrant::Inherit {
            name: name.to_string(),
        },
    })
}

/// A positive count (`--fuel`, `--max-table-elements`).
pub fn parse_count(value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("invalid number '{value}': expected a whole number (e.g. 1000000)"))
}

/// A wasm stack size within what the runtime can provide.
pub fn parse_stack_size(value: &str) -> Result<u64, String> {
    let size = parse_size(value)?;
    if !(MIN_WASM_STACK..=MAX_WASM_STACK).contains(&size) {
        return Err(format!(
            "invalid wasm stack size '{value}': must be between {} and {}",
            format_size(MIN_WASM_STACK),
            format_size(MAX_WASM_STACK)
        ));
    }
    Ok(size)
}

/// The baked directory grant for `wasmc --dir`.
pub fn dir_grant(value: &str) -> Result<DirGrant, String> {
    let (host, guest) = parse_dir(value)?;
    Ok(DirGrant { host, guest })
}

fn env_entry(name: &[u8], value: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (name.to_vec(), value.to_vec())
}

const OPTIONS: [&str; 10] = [
    "--dir",
    "--mapdir",
    "--env",
    "--argv0",
    "--max-memory",
    "--max-table-elements",
    "--max-wasm-stack",
    "--timeout",
    "--fuel",
    "--max-gc-heap",
];

/// Recognizes a runtime option: `Some((name, inline value))` for `--opt` and
/// `--opt=V`; `None` for anything else.
fn split_option(arg: &[u8]) -> Option<(&'static str, Option<&[u8]>)> {
    OPTIONS.into_iter().find_map(|name| {
        let rest = arg.strip_prefix(name.as_bytes())?;
        if rest.is_empty() {
            Some((name, None))
        } else {
            rest.strip_prefix(b"=").map(|value| (name, Some(value)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(policy: &Policy, args: &[&str]) -> Result<RunConfig, UsageError> {
        match parse(
            policy,
            true,
            OsStr::new("prog"),
            args.iter().map(OsString::from).collect(),
        )? {
            Invocation::Run(config) => Ok(config),
            Invocation::Help => panic!("unexpected help"),
        }
    }

    fn guest_args(config: &RunConfig) -> Vec<String> {
        config
            .args
            .iter()
            .map(|a| String::from_utf8(a.clone()).unwrap())
            .collect()
    }

    #[test]
    fn options_then_guest_args() {
        let c = run(
            &Policy::default(),
            &[
                "--dir",
                "/a",
                "--dir=/b::/guest",
                "--mapdir",
                "/m::/c",
                "--env",
                "A=1",
                "--env=B=x=y",
                "--",
                "--dir",
                "x",
            ],
        )
        .unwrap();
        assert_eq!(guest_args(&c), ["prog", "--dir", "x"]);
        assert_eq!(c.env, [env_entry(b"A", b"1"), env_entry(b"B", b"x=y")]);
        let dirs: Vec<_> = c
            .dirs
            .iter()
            .map(|d| (d.host.clone(), &d.guest[..]))
            .collect();
        assert_eq!(
            dirs,
            [
                (PathBuf::from("/a"), "/a"),
                (PathBuf::from("/b"), "/guest"),
                (PathBuf::from("/c"), "/m")
            ]
        );
        // Parsing stops at the first non-option.
        let c = run(&Policy::default(), &["file.txt", "--env", "A=1"]).unwrap();
        assert_eq!(guest_args(&c), ["prog", "file.txt", "--env", "A=1"]);
        assert!(c.env.is_empty());
    }

    #[test]
    fn errors() {
        for args in [
            &["--dir"][..],
            &["--dir=::x"],
            &["--mapdir=noseparator"],
            &["--mapdir=::/x"],
            &["--env="],
            &["--env", "=x"],
            &["--max-memory", "12Q"],
            &["--timeout", "-1s"],
            &["--timeout=0s"],
            &["--max-wasm-stack=1K"],
            &["--fuel", "many"],
            &["--max-table-elements=-3"],
        ] {
            assert!(run(&Policy::default(), args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn baked_policy_comes_first_and_limits_only_tighten() {
        let policy = Policy {
            argv0: Some("tool".into()),
            dirs: vec![DirGrant {
                host: "/srv".into(),
                guest: "/data".into(),
            }],
            env: vec![
                EnvGrant::Set {
                    name: "MODE".into(),
                    value: "fast".into(),
                },
                EnvGrant::Inherit {
                    name: "WASMC_TEST_SURELY_UNSET_VARIABLE".into(),
                },
            ],
            limits: Limits {
                max_memory: Some(512 << 20),
                timeout_ns: Some(30_000_000_000),
                ..Limits::default()
            },
            ..Policy::default()
        };
        let c = run(&policy, &["--dir=/x", "--env=B=2", "--max-memory=1M", "a"]).unwrap();
        assert_eq!(guest_args(&c), ["tool", "a"]);
        assert_eq!(c.dirs.len(), 2);
        assert!(c.dirs[0].baked && !c.dirs[1].baked);
        assert_eq!(c.env, [env_entry(b"MODE", b"fast"), env_entry(b"B", b"2")]);
        assert_eq!(c.limits.max_memory, Some(1 << 20));
        assert_eq!(c.limits.timeout_ns, Some(30_000_000_000));

        let err = run(&policy, &["--timeout=1m"]).unwrap_err();
        assert!(err.0.contains("--timeout 30s"), "{err}");
        let err = run(&policy, &["--max-memory=1G"]).unwrap_err();
        assert!(err.0.contains("--max-memory 512M"), "{err}");
        // No baked value: any run-time value applies.
        let c = run(&policy, &["--max-wasm-stack=1M", "--argv0=x"]).unwrap();
        assert_eq!(c.limits.max_wasm_stack, Some(1 << 20));
        assert_eq!(guest_args(&c), ["x"]);
    }

    #[test]
    fn sealed_executables_pass_everything_through() {
        let policy = Policy {
            sealed: true,
            ..Policy::default()
        };
        let args = [
            "--dir=/",
            "--env=HOME",
            "--",
            "",
            "--wasmc-help",
            "--max-memory=1",
        ];
        let c = run(&policy, &args).unwrap();
        assert_eq!(guest_args(&c)[1..], args);
        assert!(c.dirs.is_empty() && c.env.is_empty());
        assert!(c.limits.is_empty());
    }

    #[test]
    fn help_and_fuel_without_metering() {
        let p = Policy::default();
        let parse_args = |metering, args: &[&str]| {
            parse(
                &p,
                metering,
                OsStr::new("prog"),
                args.iter().map(OsString::from).collect(),
            )
        };
        assert!(matches!(
            parse_args(false, &["--env=A=1", "--wasmc-help"]),
            Ok(Invocation::Help)
        ));
        // After `--` it is the program's argument.
        assert!(matches!(
            parse_args(false, &["--", "--wasmc-help"]),
            Ok(Invocation::Run(_))
        ));
        let err = parse_args(false, &["--fuel=10"]).unwrap_err();
        assert!(err.0.contains("rebuild"), "{err}");
        assert!(parse_args(true, &["--fuel=10"]).is_ok());
    }

    #[test]
    fn missing_directories_are_named() {
        let c = run(&Policy::default(), &["--dir=/nonexistent-wasmc-dir"]).unwrap();
        let err = c.wasi_ctx().err().expect("a missing directory is an error");
        assert!(err.0.contains("/nonexistent-wasmc-dir"), "{err}");
        let baked = Policy {
            dirs: vec![DirGrant {
                host: "/nonexistent-wasmc-baked".into(),
                guest: "/d".into(),
            }],
            ..Policy::default()
        };
        let err = run(&baked, &[])
            .unwrap()
            .wasi_ctx()
            .err()
            .expect("a missing baked directory is an error");
        assert!(
            err.0.contains("/nonexistent-wasmc-baked") && err.0.contains("built into"),
            "{err}"
        );
    }
}
