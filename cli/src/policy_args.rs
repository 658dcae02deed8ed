//! The sandbox policy options of `wasmc` (`--dir`, `--env`, limits, `--seal`): parsed
//! and checked here, then baked into the executable as an `abi::policy::Policy`.
//!
//! The parsers are the executable's own (`wasmc_runtime::command_line`), so a value
//! accepted here is accepted at run time and means the same.

use clap::Args;
use wasmc_abi::policy::{
    BuildInfo, DirGrant, EnvGrant, Limits, Policy, parse_duration, parse_size,
};
use wasmc_runtime::command_line::{dir_grant, parse_count, parse_env, parse_stack_size};

/// Heading of these options in `wasmc --help`.
pub const HEADING: &str = "Sandbox policy (built into the executable, applies on every run)";

#[derive(Args, Debug, Default)]
pub struct PolicyArgs {
    /// Grant the host directory HOST on every run, seen by the program as GUEST (default:
    /// the same name). Repeatable. A relative HOST is resolved against the working
    /// directory when the executable runs. Example: `--dir /srv/data::/data`.
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = dir_grant, help_heading = HEADING)]
    pub dirs: Vec<DirGrant>,

    /// Set NAME=VALUE in the program's environment, or with `--env NAME` pass the host's
    /// NAME through at run time if it is set (nothing else of the host's environment
    /// is visible). Repeatable. Example: `--env MODE=fast --env LANG`.
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env, help_heading = HEADING)]
    pub env: Vec<EnvGrant>,

    /// The program's argv[0] (default: the name the executable is run by).
    #[arg(long, value_name = "NAME", help_heading = HEADING)]
    pub argv0: Option<String>,

    /// At most SIZE bytes per linear memory (K, M, G suffixes): `memory.grow` beyond
    /// it fails (returns -1), a memory whose minimum is larger fails to start.
    /// Example: `--max-memory 512M`.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = parse_size, help_heading = HEADING)]
    pub max_memory: Option<u64>,

    /// At most N elements per table (`table.grow` beyond it returns -1).
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_count, help_heading = HEADING)]
    pub max_table_elements: Option<u64>,

    /// Size of the wasm stack (default 8M); deeper recursion is a stack-overflow trap.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = parse_stack_size, help_heading = HEADING)]
    pub max_wasm_stack: Option<u64>,

    /// At most SIZE bytes of GC objects (WebAssembly GC structs and arrays,
    /// exceptions; default 1G): an allocation the collector cannot make room for is
    /// `wasm trap: GC heap out of memory`, exit status 134.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = parse_size, help_heading = HEADING)]
    pub max_gc_heap: Option<u64>,

    /// Wall-clock limit (500ms, 30s, 5m): the program is stopped with `wasm trap:
    /// interrupt` and exit status 134, also while blocked in a WASI call.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = parse_duration, help_heading = HEADING)]
    pub timeout: Option<std::time::Duration>,

    /// Compile in fuel metering and allow N wasm operations per run (deterministic:
    /// the same input stops at the same point on every target); running out is `wasm
    /// trap: all fuel consumed by WebAssembly`, exit status 134. Costs run time.
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_count, help_heading = HEADING)]
    pub fuel: Option<u64>,

    /// Seal the executable: it takes no runtime options, every argument (including
    /// `--dir=/`, `--env=X` and `--`) goes to the program. Without it, runtime options
    /// may add directories and variables and tighten limits.
    #[arg(long, help_heading = HEADING)]
    pub seal: bool,
}

impl PolicyArgs {
    /// The policy to bake, with the provenance of this build.
    pub fn policy(&self, build: BuildInfo) -> Policy {
        Policy {
            sealed: self.seal,
            argv0: self.argv0.clone(),
            dirs: self.dirs.clone(),
            env: self.env.clone(),
            limits: Limits {
                max_memory: self.max_memory,
                max_table_elements: self.max_table_elements,
                max_wasm_stack: self.max_wasm_stack,
                timeout_ns: self
                    .timeout
                    .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
                fuel: self.fuel,
                max_gc_heap: self.max_gc_heap,
            },
            build,
        }
    }

    /// Baked directories that do not exist on this machine: allowed (they are opened
    /// when the executable runs, maybe elsewhere), but worth a warning.
    pub fn missing_dirs(&self) -> Vec<&DirGrant> {
        self.dirs
            .iter()
            .filter(|d| !std::path::Path::new(&d.host).is_dir())
            .collect()
    }
}
