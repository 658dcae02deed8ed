//! WASI preview1 (`wasi_snapshot_preview1`, and the older `wasi_unstable`).
//! CONTRACT (used by `entry` and `instance`), to be implemented:
//!
//! * `WasiCtx::from_command_line(argv0: String, args: impl Iterator<Item = OsString>) -> Result<WasiCtx, String>`
//!   parses the executable's runtime options (`--dir`, `--mapdir`, `--env`, `--`) and keeps
//!   the rest as the guest's argv.
//! * `resolve(module: &str, name: &str) -> Option<crate::instance::HostFunc>`: the host
//!   function implementing that import, or None.
