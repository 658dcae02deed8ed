//! `wasmc`: compiles a WebAssembly (WASI preview1) module ahead of time into a native
//! executable for one of four Linux targets, and runs spec tests (`wasmc wast`).
//!
//! Steps of `wasmc INPUT`: resolve the target and its linker (fail fast, before any
//! work), read the input (text or binary), compile it (`wasmc-compiler`), check that
//! every import is provided by the runtime, write the object to a temporary
//! directory, link it with the runtime archive embedded for the target (`link`), and
//! move the result to the output path atomically.
//!
//! Every failure is reported as one `error: ...` line (the linker's own output follows
//! when linking fails) with exit status 1.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use policy_args::PolicyArgs;
use wasmc_abi::policy::BuildInfo;
use wasmc_compiler::{CompileOptions, Inlining, OptLevel};

mod embed;
mod imports;
mod inspect;
mod link;
mod oci;
mod policy_args;
mod progress;
mod targets;
mod wast;

use targets::Target;

const EXAMPLES: &str = "\
Examples:
  wasmc hello.wat                         compile to ./hello for this machine
  wasmc app.wasm -o bin/app -O2           optimize for speed and size
  wasmc app.wasm --target aarch64-unknown-linux-musl -o app-arm64
                                          fully static aarch64 executable
  wasmc app.wasm --emit obj -o app.o      stop after the object file
  wasmc plugin.wasm --emit lib -o libplugin.a
                                          a sandboxed static library + plugin.h for C
  wasmc tool.wasm -o tool --dir /srv/data::/data --env MODE=fast \\
        --max-memory 512M --timeout 30s --seal
                                          a sandboxed tool: grants and limits built in
  wasmc job.wasm --emit oci -o job.tar --dir /inputs --dir /outputs
                                          an OCI image (static musl executable)
  wasmc policy ./tool                     show what an executable may touch
  wasmc --print-targets                   list the targets this wasmc can build
  wasmc wast test.wast                    run a WebAssembly spec test script

Running the output:
  ./app [--dir HOST[::GUEST]] [--env NAME[=VALUE]] [--max-memory SIZE] [--timeout D]
        [--] [ARGS...]
  The guest sees only the directories granted with --dir (built in or given at run
  time), like `wasmtime run`. `./app --wasmc-help` lists every runtime option and the
  built-in policy. Runtime options end at the first argument that is not one: scripts
  passing untrusted arguments to an unsealed executable must put `--` first.";

/// Ahead-of-time compiler from WebAssembly (WASI preview1) modules to native executables.
#[derive(Parser, Debug)]
#[command(
    name = "wasmc",
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// The module to compile: a binary `.wasm` or a text `.wat` file (detected by
    /// content, not by extension).
    #[arg(value_name = "INPUT", required_unless_present = "print_targets")]
    input: Option<PathBuf>,

    /// Where to write the result. Default: the input's file name without its extension
    /// (plus `.o` with `--emit obj`), in the current directory.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,

    /// What to produce: `exe`, a native executable linked with the wasmc runtime;
    /// `obj`, the relocatable object file only (it exports the `wasmc_module`
    /// descriptor and needs the runtime to run); or `oci`, an OCI image archive
    /// (`skopeo`/`podman load` accept it) with the static executable as entrypoint
    /// (musl targets only; the default target becomes this machine's musl one); or
    /// `lib`, a static library (`libNAME.a`) of the sandboxed module with a C header
    /// beside it (`NAME.h`) declaring one function per export and the host imports
    /// the embedder defines (see --prefix, --header).
    #[arg(long, value_enum, value_name = "KIND", default_value_t = Emit::Exe)]
    emit: Emit,

    /// With `--emit lib`: where to write the C header (default: beside the library,
    /// `libplugin.a` -> `plugin.h`).
    #[arg(long, value_name = "PATH")]
    header: Option<PathBuf>,

    /// With `--emit lib`: the prefix of every C name of the library (default: the
    /// output's name, `libplugin.a` -> `plugin`, giving `plugin_instantiate`,
    /// `plugin_export_add`...). Must be a C identifier.
    #[arg(long, value_name = "NAME")]
    prefix: Option<String>,

    /// Cranelift optimization level: `0` (none: fastest compile), `1` (speed, the
    /// default, as `wasmtime` uses) or `2` (speed and size). Also accepts `none`,
    /// `speed`, `speed-and-size`. Examples: `-O0`, `-O2`, `--opt-level speed`.
    #[arg(
        short = 'O',
        long = "opt-level",
        value_name = "LEVEL",
        default_value = "1",
        value_parser = parse_opt_level
    )]
    opt_level: OptLevel,

    /// Inline small functions of the module into their callers: `small` (the
    /// default) replaces a direct call of a small function (at most 48 Cranelift
    /// instructions after its own inlining) that is not recursive by the function's
    /// body, within a size budget per caller (in a function that has loops, only
    /// the calls inside its loops); `none` keeps every call. Traps inside
    /// inlined code still name the inlined function in the backtrace; fuel counts
    /// are the same either way. Off at `-O0`. Example: `--inline none`.
    #[arg(long, value_name = "MODE", default_value = "small")]
    inline: InlineMode,

    /// Target triple to compile for (default: the machine wasmc runs on). One of
    /// x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu (glibc: static PIE, or
    /// dynamic when the static C library is not installed), x86_64-unknown-linux-musl,
    /// aarch64-unknown-linux-musl (fully static, no system library needed). Example:
    /// `--target aarch64-unknown-linux-musl`.
    #[arg(long, value_name = "TRIPLE")]
    target: Option<String>,

    /// CPU to generate code for (default: the target's baseline, x86-64-v2 on x86_64,
    /// generic ARMv8 on aarch64). `native` uses every feature of this machine (what
    /// `wasmtime compile` does by default; the executable then runs only on CPUs with
    /// the same features); `x86-64-v3` adds AVX2, BMI1/2, FMA and LZCNT (Haswell,
    /// Zen and later); other names are Cranelift's CPU names (`skylake`, `znver3`...;
    /// a wrong name lists them). An executable refuses to start, with a message, on a
    /// CPU that lacks a feature it was compiled for. Example: `--target-cpu x86-64-v3`.
    #[arg(long, value_name = "CPU")]
    target_cpu: Option<String>,

    /// Linker (gcc-compatible driver) to use instead of the target's default (`cc` for
    /// the host architecture, `aarch64-linux-gnu-gcc` for aarch64 on x86_64). For the
    /// host architecture the driver is asked to run LLVM's `ld.lld` when it is on PATH
    /// (`-fuse-ld=lld`: a faster link), and the link is retried with the driver's own
    /// linker if that fails. Example: `--linker /usr/bin/aarch64-linux-gnu-gcc-12`.
    #[arg(long, value_name = "PATH")]
    linker: Option<PathBuf>,

    /// Check every linear-memory access against the memory's current size instead of
    /// relying on guard pages (slower; for hosts where reserving 6 GiB of address
    /// space per memory is not possible).
    #[arg(long)]
    explicit_bounds_checks: bool,

    /// Leave out the Spectre guards: by default every explicitly bounds-checked access
    /// (memory64, large static offsets, all accesses with --explicit-bounds-checks,
    /// and table accesses such as call_indirect) computes its address with a
    /// branch-free select, so that a mispredicted check cannot read memory the
    /// index chose. Leaving them out makes explicitly checked code faster (about 20%
    /// less CPU time on bench/ with --explicit-bounds-checks; no measurable change
    /// with guard pages) but gives up that protection: only for trusted code.
    #[arg(long)]
    no_spectre_guards: bool,

    /// List the targets this installation can build for (runtime embedded and linker
    /// found), with their linker; targets that cannot be built are listed on stderr
    /// with what is missing.
    #[arg(long)]
    print_targets: bool,

    #[command(flatten)]
    policy: PolicyArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run WebAssembly spec test scripts (`.wast`): each module is compiled by wasmc
    /// and executed in-process; prints one line per file and a summary.
    Wast {
        /// The `.wast` files (or directories of them) to run. Example:
        /// `wasmc wast spec/i32.wast spec/br.wast`.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the sandbox policy built into an executable made by wasmc (directories,
    /// environment, limits, sealed or not, target, wasmc version, SHA-256 of the
    /// module), for any target, without running it.
    Policy {
        /// The executable. Example: `wasmc policy ./tool`.
        #[arg(value_name = "EXE")]
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum InlineMode {
    /// Every call stays a call.
    None,
    /// Inline small, non-recursive functions.
    Small,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Emit {
    /// Native executable.
    Exe,
    /// Relocatable object file.
    Obj,
    /// OCI image archive with the static executable.
    Oci,
    /// Static library with a C header.
    Lib,
}

fn parse_opt_level(s: &str) -> Result<OptLevel, String> {
    match s {
        "0" | "none" => Ok(OptLevel::None),
        "1" | "speed" => Ok(OptLevel::Speed),
        "2" | "speed-and-size" | "speed_and_size" => Ok(OptLevel::SpeedAndSize),
        _ => Err("expected 0, 1, 2, none, speed or speed-and-size".to_string()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Wast { files }) = &cli.command {
        return match wast::run(files) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {}", one_line(&format!("{e:#}")));
                ExitCode::FAILURE
            }
        };
    }
    // Not for `wast`: its worker processes own their panic reporting.
    install_panic_hook();
    if let Some(Command::Policy { file, json }) = &cli.command {
        return match inspect::read_policy(file) {
            Ok(policy) if *json => {
                let text = serde_json::to_string_pretty(&inspect::to_json(&policy))
                    .expect("JSON values always serialize");
                println!("{text}");
                ExitCode::SUCCESS
            }
            Ok(policy) => {
                print!("{}", policy.describe());
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.print_targets {
        targets::print_targets();
        return ExitCode::SUCCESS;
    }
    match compile_command(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A compiler bug must not look like a Rust crash to the user: print one clear line
/// instead of the default panic report. The panic still unwinds, and the process exits
/// with Rust's panic status 101 (distinct from the error status 1, so tests still
/// catch compiler bugs).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_string());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal compiler error: {}{location}; this is a bug in wasmc, please report it",
            one_line(&what)
        );
    }));
}

fn compile_command(cli: &Cli) -> Result<(), String> {
    let input = cli.input.as_deref().expect("clap requires INPUT here");
    let file = input.display().to_string();

    // Target, runtime archive and linker first: they are cheap to check and an error
    // there should not wait for a long compilation.
    let target = match &cli.target {
        Some(name) => Target::find(name)?,
        None if cli.emit == Emit::Oci => targets::default_static_target(),
        None => targets::default_target(),
    };
    if cli.emit == Emit::Oci && !target.is_static() {
        return Err(format!(
            "--emit oci needs a statically linked executable, and {} executables need the \
             host's glibc, which an image of one file does not have: use --target {}",
            target.triple,
            targets::default_static_target().triple
        ));
    }
    if cli.policy.seal && cli.emit == Emit::Obj {
        return Err(
            "--seal applies to executables; it cannot be combined with --emit obj \
                    (an object file has no command line to seal)"
                .to_string(),
        );
    }
    for dir in cli.policy.missing_dirs() {
        eprintln!(
            "warning: --dir {}: no such directory on this machine; it is opened when the \
             executable runs",
            dir.host
        );
    }
    if cli.emit != Emit::Lib && (cli.header.is_some() || cli.prefix.is_some()) {
        return Err("--header and --prefix apply to --emit lib".to_string());
    }
    if cli.emit == Emit::Lib {
        check_library_options(cli)?;
    }
    let link_setup = match cli.emit {
        Emit::Exe | Emit::Oci | Emit::Lib => {
            Some((target.embedded()?, target.linker(cli.linker.as_deref())?))
        }
        Emit::Obj => None,
    };
    let output = output_path(cli, input)?;
    let library_names = match cli.emit {
        Emit::Lib => Some(library_names(cli, &output)?),
        _ => None,
    };
    let out_name = output.display().to_string();
    let staged = StagedOutput::new(&output).map_err(|e| format!("{out_name}: {e}"))?;

    let bytes = fs::read(input).map_err(|e| format!("{file}: cannot read: {}", io_reason(&e)))?;
    let wasm = wasmc_compiler::read_input(&bytes).map_err(|e| format!("{file}: {e}"))?;
    let policy = cli.policy.policy(BuildInfo {
        wasmc_version: env!("CARGO_PKG_VERSION").to_string(),
        target: target.triple.to_string(),
        module_sha256: oci::sha256_hex(&bytes),
        fuel_metering: cli.policy.fuel.is_some(),
    });
    let opts = CompileOptions {
        triple: target.lexicon_triple(),
        opt_level: cli.opt_level,
        explicit_bounds_checks: cli.explicit_bounds_checks,
        spectre_guards: !cli.no_spectre_guards,
        fuel_metering: cli.policy.fuel.is_some(),
        policy: Some(policy),
        target_cpu: cli.target_cpu.clone(),
        inline: match cli.inline {
            InlineMode::None => Inlining::None,
            InlineMode::Small => Inlining::Small,
        },
    };
    let is_component = wasmc_compiler::component::is_component(&wasm);
    let mut library = None;
    if is_component {
        // A WASI 0.2 component: its imports are checked while it is flattened.
        if link_setup.is_none() {
            return Err(format!(
                "{file}: --emit obj is not supported for components yet (a component \
                 compiles to one object per core module); build an executable instead"
            ));
        }
        if library_names.is_some() {
            return Err(format!(
                "{file}: --emit lib is not supported for components yet; build an \
                 executable instead"
            ));
        }
    } else if let Some((prefix, _)) = &library_names {
        // Everything the C API cannot express is refused before compiling.
        let info = wasmc_compiler::module_info(&wasm).map_err(|e| format!("{file}: {e}"))?;
        library = Some(embed::Library::plan(&info, prefix).map_err(|e| format!("{file}: {e}"))?);
    } else if link_setup.is_some() {
        // Refuse imports the runtime cannot satisfy before the (much longer) compilation.
        let info = wasmc_compiler::module_info(&wasm).map_err(|e| format!("{file}: {e}"))?;
        imports::check(&info).map_err(|e| format!("{file}: {e}"))?;
    }
    // Erased (dropped) before any error is printed or the command returns.
    let progress = progress::ProgressLine::start(&file);
    let objects = if is_component {
        wasmc_compiler::component::compile_component(&wasm, &opts)
            .map_err(|e| format!("{file}: {e}"))?
            .objects
    } else {
        let compiled = wasmc_compiler::compile_with_progress(&wasm, &opts, progress.progress())
            .map_err(|e| format!("{file}: {e}"))?;
        vec![compiled.object]
    };

    let Some((embedded, linker)) = link_setup else {
        staged
            .write(&objects[0], 0o666)
            .map_err(|e| format!("{out_name}: cannot write: {}", io_reason(&e)))?;
        return Ok(());
    };
    let workdir = tempfile::Builder::new()
        .prefix("wasmc-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {}", io_reason(&e)))?;
    let mut object_paths = Vec::with_capacity(objects.len());
    for (index, bytes) in objects.iter().enumerate() {
        let object = workdir.path().join(format!("module{index}.o"));
        fs::write(&object, bytes)
            .map_err(|e| format!("cannot write {}: {}", object.display(), io_reason(&e)))?;
        object_paths.push(object);
    }
    if let (Some(library), Some((_, header_path))) = (&library, &library_names) {
        return write_library(LibraryJob {
            library,
            target,
            embedded,
            driver: &linker,
            object: &object_paths[0],
            workdir: workdir.path(),
            input: &file,
            module_sha256: &oci::sha256_hex(&bytes),
            output: &output,
            staged,
            header_path,
        })
        .map_err(|e| format!("{file}: {e}"));
    }
    let linked = workdir.path().join("a.out");
    progress.linking();
    link::LinkJob {
        target,
        embedded,
        linker: &linker,
        objects: &object_paths,
        output: &linked,
        workdir: workdir.path(),
    }
    .run()
    .map_err(|e| format!("{file}: {e}"))?;
    drop(progress);
    let exe = fs::read(&linked).map_err(|e| format!("{file}: cannot read linker output: {e}"))?;
    if cli.emit == Emit::Oci {
        let archive = oci::image_archive(&oci::ImageSpec {
            executable: &exe,
            name: &image_name(&output),
            architecture: target.oci_architecture(),
            volumes: cli
                .policy
                .dirs
                .iter()
                .map(|d| mount_point(&d.host))
                .collect(),
            created_by: format!("wasmc {}", env!("CARGO_PKG_VERSION")),
        })?;
        return staged
            .write(&archive, 0o666)
            .map_err(|e| format!("{out_name}: cannot write: {}", io_reason(&e)));
    }
    staged
        .write(&exe, 0o777)
        .map_err(|e| format!("{out_name}: cannot write: {}", io_reason(&e)))?;
    Ok(())
}

/// The sandbox policy options that make no sense for a library, whose embedder
/// configures each instance at run time; the memory and table caps are built in
/// like in an executable (`*_config_max_memory` can only tighten them).
fn check_library_options(cli: &Cli) -> Result<(), String> {
    let p = &cli.policy;
    let refused = [
        (!p.dirs.is_empty(), "--dir (use <prefix>_config_dir)"),
        (!p.env.is_empty(), "--env (use <prefix>_config_env)"),
        (p.argv0.is_some(), "--argv0 (use <prefix>_config_arg)"),
        (p.seal, "--seal"),
        (p.timeout.is_some(), "--timeout"),
        (p.fuel.is_some(), "--fuel"),
        (
            p.max_wasm_stack.is_some(),
            "--max-wasm-stack (wasm runs on the calling thread's stack)",
        ),
    ];
    let named: Vec<&str> = refused
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} cannot be combined with --emit lib: a library's embedder configures each \
         instance (only --max-memory and --max-table-elements are built in)",
        named.join(", ")
    ))
}

/// The C prefix and the header path of a library written to `output`.
fn library_names(cli: &Cli, output: &Path) -> Result<(String, PathBuf), String> {
    let stem = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.strip_suffix(".a").unwrap_or(&stem);
    let stem = stem.strip_prefix("lib").unwrap_or(stem).to_string();
    let prefix = match &cli.prefix {
        Some(prefix) if embed::valid_prefix(prefix) => prefix.clone(),
        Some(prefix) => {
            return Err(format!(
                "--prefix {prefix:?} is not a C identifier (letters, digits and _, not \
                 starting with a digit)"
            ));
        }
        None if embed::valid_prefix(&stem) => stem.clone(),
        None => {
            return Err(format!(
                "cannot take a C prefix from the output name {:?}; give one with --prefix",
                output.display().to_string()
            ));
        }
    };
    let header = match &cli.header {
        Some(path) => path.clone(),
        None => {
            let name = if stem.is_empty() {
                prefix.clone()
            } else {
                stem
            };
            output.with_file_name(format!("{name}.h"))
        }
    };
    Ok((prefix, header))
}

struct LibraryJob<'a> {
    library: &'a embed::Library,
    target: &'static Target,
    embedded: &'static targets::EmbeddedTarget,
    driver: &'a Path,
    object: &'a Path,
    workdir: &'a Path,
    input: &'a str,
    module_sha256: &'a str,
    output: &'a Path,
    staged: StagedOutput,
    header_path: &'a Path,
}

/// Writes the header and the archive of `--emit lib`.
fn write_library(job: LibraryJob) -> Result<(), String> {
    let file_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let library_file = file_name(job.output);
    let (driver, _) = job.target.default_linker();
    let link_command = if job.target.is_static() {
        let cc = if job.target.triple.starts_with("x86_64") {
            "musl-gcc"
        } else {
            "aarch64-linux-musl-gcc"
        };
        format!("{cc} -static host.c {library_file}")
    } else {
        format!("{driver} host.c {library_file} -lpthread -ldl -lm")
    };
    let header = embed::c_source::header(
        job.library,
        &embed::c_source::HeaderContext {
            library_file: &library_file,
            // The file name only: the header does not depend on where it was built.
            module_file: &file_name(Path::new(job.input)),
            module_sha256: job.module_sha256,
            target: job.target.triple,
            link_command,
        },
    );
    let header_name = format!("{}.h", job.library.prefix);
    let include_dir = job.workdir.join("include");
    let write = |path: &Path, text: &[u8]| {
        fs::write(path, text)
            .map_err(|e| format!("cannot write {}: {}", path.display(), io_reason(&e)))
    };
    fs::create_dir_all(&include_dir)
        .map_err(|e| format!("cannot create {}: {}", include_dir.display(), io_reason(&e)))?;
    write(&include_dir.join(&header_name), header.as_bytes())?;
    let wrappers_c = job.workdir.join("wrappers.c");
    write(
        &wrappers_c,
        embed::c_source::wrappers(job.library, &header_name).as_bytes(),
    )?;
    let archive = job.workdir.join("out.a");
    embed::archive::ArchiveJob {
        target: job.target,
        embedded: job.embedded,
        driver: job.driver,
        object: job.object,
        wrappers_c: &wrappers_c,
        include_dir: &include_dir,
        public_symbols: &job.library.public_symbols(),
        output: &archive,
        workdir: job.workdir,
    }
    .run()?;
    let bytes =
        fs::read(&archive).map_err(|e| format!("cannot read {}: {e}", archive.display()))?;
    let header_out = job.header_path.display().to_string();
    let staged_header =
        StagedOutput::new(job.header_path).map_err(|e| format!("{header_out}: {e}"))?;
    job.staged
        .write(&bytes, 0o666)
        .map_err(|e| format!("{}: cannot write: {}", job.output.display(), io_reason(&e)))?;
    staged_header
        .write(header.as_bytes(), 0o666)
        .map_err(|e| format!("{header_out}: cannot write: {}", io_reason(&e)))
}

/// The executable's name inside an image: the output's stem, reduced to the
/// characters an image reference allows (`job.tar` -> `job`).
fn image_name(output: &Path) -> String {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(|c| c == '-' || c == '_').to_string();
    if name.is_empty() {
        "app".to_string()
    } else {
        name
    }
}

/// Where a baked directory is inside the image: relative host paths are resolved
/// against the image's working directory, `/`.
fn mount_point(host: &str) -> String {
    if host.starts_with('/') {
        host.to_string()
    } else {
        format!("/{}", host.trim_start_matches("./"))
    }
}

/// `-o FILE`, or the input's stem in the current directory (`.o` added for objects,
/// `.tar` for images).
fn output_path(cli: &Cli, input: &Path) -> Result<PathBuf, String> {
    if let Some(out) = &cli.output {
        return Ok(out.clone());
    }
    let stem = input
        .file_stem()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{}: cannot derive an output name; use -o", input.display()))?;
    let mut name = stem.to_os_string();
    match cli.emit {
        Emit::Obj => name.push(".o"),
        Emit::Oci => name.push(".tar"),
        Emit::Lib => {
            let mut lib = std::ffi::OsString::from("lib");
            lib.push(&name);
            lib.push(".a");
            name = lib;
        }
        Emit::Exe => {}
    }
    let out = PathBuf::from(name);
    // `wasmc prog` (an input without extension) must not overwrite its own input.
    if same_file(&out, input) {
        return Err(format!(
            "{}: the default output name would overwrite the input; use -o",
            input.display()
        ));
    }
    Ok(out)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The output is written to a temporary file in the destination directory and renamed
/// over the destination at the end: an error never leaves a truncated file behind,
/// and an unwritable destination is reported before compiling.
struct StagedOutput {
    file: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl StagedOutput {
    fn new(dest: &Path) -> Result<StagedOutput, String> {
        if dest.is_dir() {
            return Err("is a directory".to_string());
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let file = tempfile::Builder::new()
            .prefix(".wasmc-")
            .tempfile_in(dir)
            .map_err(|e| format!("cannot write: {}", io_reason(&e)))?;
        Ok(StagedOutput {
            file,
            dest: dest.to_path_buf(),
        })
    }

    /// Writes `bytes`, gives the file `mode` minus the umask, and moves it into place.
    fn write(mut self, bytes: &[u8], mode: u32) -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        self.file.write_all(bytes)?;
        self.file.flush()?;
        let mode = mode & !current_umask();
        fs::set_permissions(self.file.path(), fs::Permissions::from_mode(mode))?;
        self.file.persist(&self.dest).map_err(|e| e.error)?;
        Ok(())
    }
}

fn current_umask() -> u32 {
    // SAFETY: umask only swaps the process's file-creation mask; it is restored
    // immediately, and wasmc creates no files on other threads meanwhile.
    let mask = unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old
    };
    mask as u32
}

/// An io::Error without Rust's " (os error N)" suffix.
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
