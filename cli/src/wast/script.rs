//! Runs the directives of one `.wast` script (in a worker process) and reports each
//! outcome as a protocol record.
//!
//! Every module of the script is encoded and compiled up front, in parallel (rayon),
//! and linked into its own shared object; the directives then run in order on the
//! current thread, which is the only thread that touches instances (they are not
//! `Send`, and the runtime's stack limit and trap recovery are per thread).
//!
//! Every directive counts as one check: `module` (it must compile and instantiate),
//! `register`, `invoke` (it must not trap) and each `assert_*`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use rayon::prelude::*;
use wast::lexer::Lexer;
use wast::parser::{self, ParseBuffer};
use wast::token::{Id, Span};
use wast::{QuoteWat, Wast, WastDirective, WastExecute, WastInvoke, WastRet, Wat};

use wasmc_abi::{Import, Trap};
use wasmc_compiler::CompileErrorKind;
use wasmc_runtime::instance::{Extern, InstanceHandle, InstantiationError, Module, Val};
use wasmc_runtime::traps::TrapInfo;

use super::component::{self, harness};
use super::features;
use super::loader::{self, PrepareError};
use super::protocol::Record;
use super::spectest;
use super::values;

/// Runs one script file, emitting records (always ending with `Done`). Shared
/// objects go to a new directory inside `scratch` (or the system's temporary
/// directory), removed when the script ends.
pub fn run(path: &Path, scratch: Option<&Path>) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            Record::Total(1).emit();
            Record::Fail(format!("cannot read {}: {e}", path.display())).emit();
            Record::Done.emit();
            return;
        }
    };
    let skip = features::classify(path).unsupported_reason();
    // The legacy exception-handling files use a folded syntax the parser no longer
    // reads (see `legacy_text`); their quoted modules are rewritten when encoded.
    let legacy = features::classify(path) == features::Proposal::LegacyExceptions;
    let text = if legacy {
        match super::legacy_text::unfold(&text) {
            Ok(unfolded) => unfolded,
            Err(e) => {
                Record::Total(1).emit();
                Record::Fail(format!("the script does not parse: {e}")).emit();
                Record::Done.emit();
                return;
            }
        }
    } else {
        text
    };
    // The lexer's "confusing unicode" check is a lint for hand-written sources, not a
    // rule of the text format: `names.wast` deliberately uses such characters.
    let mut lexer = Lexer::new(&text);
    lexer.allow_confusing_unicode(true);
    let buf = match ParseBuffer::new_with_lexer(lexer) {
        Ok(buf) => buf,
        Err(mut e) => return parse_failure(path, &text, &mut e, skip),
    };
    let wast = match parser::parse::<Wast>(&buf) {
        Ok(wast) => wast,
        Err(mut e) => return parse_failure(path, &text, &mut e, skip),
    };
    Record::Total(wast.directives.len() as u64).emit();
    if let Some(reason) = skip {
        let proposal = features::classify(path).name();
        Record::Skip(format!("{proposal}: {reason}")).emit();
        Record::Done.emit();
        return;
    }
    match Script::new(path, &text, scratch) {
        Ok(mut script) => {
            script.legacy_text = legacy;
            script.run(wast.directives)
        }
        Err(e) => {
            for _ in 0..wast.directives.len().max(1) {
                Record::Fail(format!("harness setup failed: {e}")).emit();
            }
        }
    }
    Record::Done.emit();
}

fn parse_failure(path: &Path, text: &str, e: &mut wast::Error, skip: Option<&str>) {
    e.set_path(path);
    e.set_text(text);
    if let Some(reason) = skip {
        // A file of an unsupported proposal may use syntax the parser does not know
        // either; it is skipped all the same, with nothing to count.
        let proposal = features::classify(path).name();
        Record::Total(0).emit();
        Record::Skip(format!(
            "{proposal}: {reason} (file does not parse: {})",
            e.message()
        ))
        .emit();
    } else {
        Record::Total(1).emit();
        Record::Fail(format!("the script does not parse: {e}")).emit();
    }
    Record::Done.emit();
}

/// A module of the script, encoded and (for modules that run) compiled and linked.
enum Prepared {
    /// The text could not be turned into a binary.
    Encode(String),
    /// The binary, and the shared object or why there is none.
    Built(Result<PathBuf, PrepareError>),
    /// An `assert_invalid` module that the rules of the file's proposal reject
    /// (see `Proposal::own_validation_rules`): the validator's message.
    InvalidUnderProposal(String),
    /// A valid component, with its core modules built (for those that run), or why
    /// one of them could not be.
    Component(Result<Rc<component::Prepared>, String>),
}

/// Where imports of a given module name are resolved.
enum Exporter {
    Instance(InstanceHandle),
    Host(HashMap<String, Extern>),
}

impl Exporter {
    fn export(&self, name: &str) -> Option<Extern> {
        match self {
            Exporter::Instance(instance) => instance.export(name),
            Exporter::Host(map) => map.get(name).cloned(),
        }
    }
}

/// Outcome of one directive: `Err` holds the failure message.
type Check = Result<(), String>;

struct Script<'t> {
    text: &'t str,
    /// Shared objects are written here; the directory lives as long as the script.
    dir: tempfile::TempDir,
    prepared: HashMap<usize, Prepared>,
    registered: HashMap<String, Exporter>,
    named: HashMap<String, InstanceHandle>,
    current: Option<InstanceHandle>,
    /// Why there is no current instance: where the last module failed.
    current_error: Option<String>,
    definitions: HashMap<String, Arc<Module>>,
    last_definition: Option<Arc<Module>>,
    /// Quoted modules are in the folded legacy exception-handling syntax.
    legacy_text: bool,
    /// The feature set `assert_invalid` modules of this file are judged by, when it
    /// is not WebAssembly 3.0 (see `Proposal::own_validation_rules`).
    own_rules: Option<wasmparser::WasmFeatures>,
    /// Component instances and definitions.
    components: harness::Harness,
    /// Whether the latest `definition` directive defined a component.
    last_definition_is_component: bool,
}

impl<'t> Script<'t> {
    fn new(path: &Path, text: &'t str, scratch: Option<&Path>) -> Result<Script<'t>, String> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("wasmc-wast-");
        let dir = match scratch.filter(|d| d.is_dir()) {
            Some(scratch) => builder.tempdir_in(scratch),
            None => builder.tempdir(),
        }
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let mut registered = HashMap::new();
        registered.insert(
            "spectest".to_string(),
            Exporter::Host(spectest::exports().map_err(|e| {
                format!(
                    "cannot create the spectest module for {}: {e}",
                    path.display()
                )
            })?),
        );
        Ok(Script {
            text,
            dir,
            prepared: HashMap::new(),
            registered,
            named: HashMap::new(),
            current: None,
            current_error: None,
            definitions: HashMap::new(),
            last_definition: None,
            legacy_text: false,
            own_rules: features::classify(path).own_validation_rules(),
            components: harness::Harness::default(),
            last_definition_is_component: false,
        })
    }

    fn run(&mut self, mut directives: Vec<WastDirective<'_>>) {
        self.prepare(&mut directives);
        for (index, directive) in directives.into_iter().enumerate() {
            let span = directive.span();
            let (what, outcome) = self.execute(index, span, directive);
            match outcome {
                Ok(()) => Record::Pass.emit(),
                Err(message) => {
                    let (line, col) = span.linecol_in(self.text);
                    Record::Fail(format!("{}:{}: {what}: {message}", line + 1, col + 1)).emit();
                }
            }
        }
    }

    /// Encodes every module of the script, then compiles (and, where it will be
    /// instantiated, links) them all in parallel.
    fn prepare(&mut self, directives: &mut [WastDirective<'_>]) {
        struct Job {
            index: usize,
            wasm: Vec<u8>,
            link: bool,
        }
        let mut jobs = Vec::new();
        // Components to build: (directive, validated binary, whether it runs).
        let mut components: Vec<(usize, component::Validated, bool)> = Vec::new();
        for (index, directive) in directives.iter_mut().enumerate() {
            let mut judge_by_own_rules = false;
            let (module, link) = match directive {
                WastDirective::Module(m) | WastDirective::ModuleDefinition(m) => {
                    (ModuleRef::Quote(m), true)
                }
                WastDirective::AssertInvalid { module, .. } => {
                    judge_by_own_rules = true;
                    (ModuleRef::Quote(module), false)
                }
                WastDirective::AssertMalformed { module, .. }
                | WastDirective::AssertMalformedCustom { module, .. }
                | WastDirective::AssertInvalidCustom { module, .. } => {
                    (ModuleRef::Quote(module), false)
                }
                WastDirective::AssertUnlinkable { module, .. } => (ModuleRef::Wat(module), true),
                WastDirective::AssertTrap {
                    exec: WastExecute::Wat(module),
                    ..
                }
                | WastDirective::AssertReturn {
                    exec: WastExecute::Wat(module),
                    ..
                }
                | WastDirective::AssertException {
                    exec: WastExecute::Wat(module),
                    ..
                } => (ModuleRef::Wat(module), true),
                _ => continue,
            };
            match module.encode(self.legacy_text) {
                Ok(wasm) if wasmc_compiler::component::is_component(&wasm) => {
                    match component::validate(wasm) {
                        Ok(validated) => components.push((index, validated, link)),
                        Err(e) => {
                            self.prepared
                                .insert(index, Prepared::Encode(format!("invalid component: {e}")));
                        }
                    }
                }
                Ok(wasm) => {
                    if judge_by_own_rules
                        && let Some(rules) = self.own_rules
                        && let Err(e) =
                            wasmparser::Validator::new_with_features(rules).validate_all(&wasm)
                    {
                        self.prepared
                            .insert(index, Prepared::InvalidUnderProposal(e.to_string()));
                        continue;
                    }
                    jobs.push(Job { index, wasm, link })
                }
                Err(e) => {
                    self.prepared.insert(index, Prepared::Encode(e));
                }
            }
        }
        let dir = self.dir.path().to_path_buf();
        let built: Vec<(usize, Result<PathBuf, PrepareError>)> = jobs
            .into_par_iter()
            .map(|job| {
                let result = if job.link {
                    loader::compile_and_link(&job.wasm, &dir, &format!("m{}", job.index))
                } else {
                    loader::compile_only(&job.wasm).map(|()| PathBuf::new())
                };
                (job.index, result)
            })
            .collect();
        for (index, result) in built {
            self.prepared.insert(index, Prepared::Built(result));
        }
        // Every core module of every component that runs, in parallel.
        let module_jobs: Vec<(usize, usize, std::ops::Range<usize>)> = components
            .iter()
            .enumerate()
            .filter(|(_, (_, _, link))| *link)
            .flat_map(|(c, (_, v, _))| v.modules.iter().map(move |r| (c, r.start, r.clone())))
            .collect();
        let built: Vec<(usize, usize, Result<PathBuf, String>)> = module_jobs
            .into_par_iter()
            .map(|(c, start, range)| {
                let (index, validated, _) = &components[c];
                let stem = format!("c{index}_{start}");
                (
                    c,
                    start,
                    component::build_module(&validated.wasm, &range, &dir, &stem, None),
                )
            })
            .collect();
        let mut shared: Vec<HashMap<usize, Result<PathBuf, String>>> =
            components.iter().map(|_| HashMap::new()).collect();
        for (c, start, result) in built {
            shared[c].insert(start, result);
        }
        for ((index, validated, _), shared) in components.into_iter().zip(shared) {
            let prepared = component::Prepared {
                validated,
                shared,
                dir: dir.clone(),
            };
            self.prepared
                .insert(index, Prepared::Component(Ok(Rc::new(prepared))));
        }
    }

    /// Runs one directive; returns a short description of it and the outcome.
    fn execute(
        &mut self,
        index: usize,
        span: Span,
        directive: WastDirective<'_>,
    ) -> (String, Check) {
        let slot = match self.prepared.get(&index) {
            Some(Prepared::Component(c)) => harness::Slot::Component(c),
            _ => harness::Slot::Other,
        };
        if let Some(outcome) =
            self.components
                .execute(&directive, slot, self.last_definition_is_component)
        {
            match &directive {
                WastDirective::Module(_) => {
                    // The component is the current instance now (or nothing is).
                    self.current = None;
                    let (line, col) = span.linecol_in(self.text);
                    self.current_error = Some(match &outcome.1 {
                        Ok(()) => "the current instance is a component".into(),
                        Err(_) => format!(
                            "no current instance: the component at {}:{} failed",
                            line + 1,
                            col + 1
                        ),
                    });
                }
                WastDirective::ModuleDefinition(_) => self.last_definition_is_component = true,
                WastDirective::ModuleInstance { .. } => {
                    self.current = None;
                    let (line, col) = span.linecol_in(self.text);
                    if outcome.1.is_err() {
                        self.current_error = Some(format!(
                            "no current instance: the component instance at {}:{} failed",
                            line + 1,
                            col + 1
                        ));
                    }
                }
                _ => {}
            }
            return outcome;
        }
        match &directive {
            WastDirective::Module(_) | WastDirective::ModuleInstance { .. } => {
                self.components.current = None;
            }
            WastDirective::ModuleDefinition(_) => self.last_definition_is_component = false,
            _ => {}
        }
        match directive {
            WastDirective::Module(module) => {
                let name = module.name().map(|id| id.name().to_string());
                let what = describe_module("module", name.as_deref());
                let outcome = self.load(index).and_then(|m| {
                    let instance = self.instantiate(m).map_err(|e| describe_error(&e))?;
                    if let Some(name) = name {
                        self.named.insert(name, instance.clone());
                    }
                    self.current = Some(instance);
                    Ok(())
                });
                if outcome.is_err() {
                    // Later directives must not silently run against an older module.
                    self.current = None;
                    let (line, col) = span.linecol_in(self.text);
                    self.current_error = Some(format!(
                        "no current module: the module at {}:{} failed",
                        line + 1,
                        col + 1
                    ));
                }
                (what, outcome)
            }
            WastDirective::ModuleDefinition(module) => {
                let name = module.name().map(|id| id.name().to_string());
                let what = describe_module("module definition", name.as_deref());
                let outcome = self.load(index).map(|m| {
                    if let Some(name) = name {
                        self.definitions.insert(name, m.clone());
                    }
                    self.last_definition = Some(m);
                });
                (what, outcome)
            }
            WastDirective::ModuleInstance {
                instance, module, ..
            } => {
                let what = format!(
                    "module instance{}{}",
                    instance
                        .map(|i| format!(" ${}", i.name()))
                        .unwrap_or_default(),
                    module
                        .map(|m| format!(" ${}", m.name()))
                        .unwrap_or_default()
                );
                let outcome = self.instance_of_definition(instance, module);
                (what, outcome)
            }
            WastDirective::Register { name, module, .. } => {
                let what = format!("register {name:?}");
                let outcome = self.instance(module).map(|instance| {
                    self.registered
                        .insert(name.to_string(), Exporter::Instance(instance));
                });
                (what, outcome)
            }
            WastDirective::Invoke(invoke) => {
                let what = describe_invoke("invoke", &invoke);
                let outcome = self.invoke(&invoke).map(|_| ());
                (what, outcome.map_err(|e| e.to_string()))
            }
            WastDirective::AssertReturn { exec, results, .. } => {
                let what = describe_execute("assert_return", &exec);
                let outcome = self.assert_return(index, exec, &results);
                (what, outcome)
            }
            WastDirective::AssertTrap { exec, message, .. } => {
                let what = describe_execute("assert_trap", &exec);
                let outcome = self.assert_trap(index, exec, message);
                (what, outcome)
            }
            WastDirective::AssertExhaustion { call, message, .. } => {
                let what = describe_invoke("assert_exhaustion", &call);
                let outcome = match self.invoke(&call) {
                    Ok(values) => Err(format!(
                        "expected a trap ({message:?}), returned {}",
                        show_values(&values)
                    )),
                    Err(Failure::Trap(trap)) => check_trap(&trap, message).and_then(|()| {
                        if trap.trap == Trap::StackOverflow {
                            Ok(())
                        } else {
                            Err(format!(
                                "expected stack exhaustion, trapped with {:?}",
                                trap.trap
                            ))
                        }
                    }),
                    Err(other) => Err(other.to_string()),
                };
                (what, outcome)
            }
            WastDirective::AssertInvalid { message, .. } => (
                "assert_invalid".into(),
                self.assert_rejected(index, message),
            ),
            WastDirective::AssertMalformed { message, .. } => (
                "assert_malformed".into(),
                self.assert_rejected(index, message),
            ),
            WastDirective::AssertMalformedCustom { .. }
            | WastDirective::AssertInvalidCustom { .. } => {
                let what = "assert_malformed_custom/assert_invalid_custom".to_string();
                (what, self.assert_custom_ignored(index))
            }
            WastDirective::AssertUnlinkable { message, .. } => {
                let outcome = self.load(index).and_then(|m| match self.instantiate(m) {
                    Ok(_) => Err(format!("expected unlinkable ({message:?}), instantiated")),
                    Err(InstantiationError::Unlinkable(actual)) => {
                        if actual.contains(message) {
                            Ok(())
                        } else {
                            Err(format!("expected {message:?}, got unlinkable: {actual}"))
                        }
                    }
                    Err(e) => Err(format!(
                        "expected unlinkable ({message:?}), got {}",
                        describe_error(&e)
                    )),
                });
                ("assert_unlinkable".into(), outcome)
            }
            WastDirective::AssertException { exec, .. } => {
                let what = describe_execute("assert_exception", &exec);
                let outcome = self.assert_exception(index, exec);
                (what, outcome)
            }
            WastDirective::AssertSuspension { exec, .. } => (
                describe_execute("assert_suspension", &exec),
                Err("unsupported directive (stack switching proposal)".into()),
            ),
            WastDirective::Thread(_) | WastDirective::Wait { .. } => (
                "thread".into(),
                Err("unsupported directive (threads proposal)".into()),
            ),
        }
    }

    /// The loaded module of directive `index`.
    fn load(&self, index: usize) -> Result<Arc<Module>, String> {
        let shared = match self.prepared.get(&index) {
            None => return Err("internal error: module was not prepared".into()),
            Some(Prepared::Encode(e)) => return Err(format!("cannot encode the module: {e}")),
            Some(Prepared::Built(Err(e))) => return Err(format!("module not compiled: {e}")),
            Some(Prepared::InvalidUnderProposal(e)) => {
                return Err(format!("module not compiled: invalid: {e}"));
            }
            Some(Prepared::Component(_)) => {
                return Err("a component where a core module is expected".into());
            }
            Some(Prepared::Built(Ok(path))) => path,
        };
        let descriptor = loader::load(shared)?;
        // SAFETY: the descriptor comes from an object wasmc's compiler produced, and
        // `loader::load` never unloads it.
        unsafe { Module::new(descriptor) }.map_err(|e| format!("cannot load the module: {e}"))
    }

    fn instantiate(&self, module: Arc<Module>) -> Result<InstanceHandle, InstantiationError> {
        let registered = &self.registered;
        let mut resolver = |import: &Import| registered.get(&import.module)?.export(&import.name);
        InstanceHandle::new(module, &mut resolver, None)
    }

    fn instance_of_definition(
        &mut self,
        instance: Option<Id<'_>>,
        module: Option<Id<'_>>,
    ) -> Check {
        let definition = match module {
            Some(id) => self
                .definitions
                .get(id.name())
                .cloned()
                .ok_or_else(|| format!("unknown module definition ${}", id.name()))?,
            None => self
                .last_definition
                .clone()
                .ok_or("no module definition precedes this instance")?,
        };
        let handle = self
            .instantiate(definition)
            .map_err(|e| describe_error(&e))?;
        if let Some(id) = instance {
            self.named.insert(id.name().to_string(), handle.clone());
        }
        self.current = Some(handle);
        Ok(())
    }

    /// The instance named `id`, or the current one.
    fn instance(&self, id: Option<Id<'_>>) -> Result<InstanceHandle, String> {
        match id {
            Some(id) => self
                .named
                .get(id.name())
                .cloned()
                .ok_or_else(|| format!("unknown module ${}", id.name())),
            None => self.current.clone().ok_or_else(|| {
                self.current_error
                    .clone()
                    .unwrap_or_else(|| "no module has been instantiated".to_string())
            }),
        }
    }

    fn invoke(&self, invoke: &WastInvoke<'_>) -> Result<Vec<Val>, Failure> {
        let instance = self.instance(invoke.module).map_err(Failure::Harness)?;
        let func = instance
            .export_func(invoke.name)
            .ok_or_else(|| Failure::Harness(format!("no exported function {:?}", invoke.name)))?;
        let args = invoke
            .args
            .iter()
            .map(values::arg)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::Harness)?;
        instance.invoke(&func, &args).map_err(Failure::Trap)
    }

    fn get(&self, module: Option<Id<'_>>, global: &str) -> Result<Val, String> {
        let instance = self.instance(module)?;
        match instance.export(global) {
            Some(Extern::Global(g)) => Ok(g.get()),
            Some(_) => Err(format!("export {global:?} is not a global")),
            None => Err(format!("no exported global {global:?}")),
        }
    }

    fn assert_return(
        &mut self,
        index: usize,
        exec: WastExecute<'_>,
        expected: &[WastRet<'_>],
    ) -> Check {
        let actual = match exec {
            WastExecute::Invoke(invoke) => self.invoke(&invoke).map_err(|e| e.to_string())?,
            WastExecute::Get { module, global, .. } => vec![self.get(module, global)?],
            WastExecute::Wat(_) => {
                let module = self.load(index)?;
                self.instantiate(module).map_err(|e| describe_error(&e))?;
                Vec::new()
            }
        };
        if actual.len() != expected.len() {
            return Err(format!(
                "expected {} results, got {}: {}",
                expected.len(),
                actual.len(),
                show_values(&actual)
            ));
        }
        let mismatches: Vec<String> = expected
            .iter()
            .zip(&actual)
            .enumerate()
            .filter_map(|(i, (e, a))| {
                values::check(e, a)
                    .err()
                    .map(|m| format!("result {i}: {m}"))
            })
            .collect();
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(mismatches.join("; "))
        }
    }

    fn assert_trap(&mut self, index: usize, exec: WastExecute<'_>, message: &str) -> Check {
        match exec {
            WastExecute::Invoke(invoke) => match self.invoke(&invoke) {
                Ok(values) => Err(format!(
                    "expected trap {message:?}, returned {}",
                    show_values(&values)
                )),
                Err(Failure::Trap(trap)) => check_trap(&trap, message),
                Err(other) => Err(other.to_string()),
            },
            WastExecute::Get { .. } => Err("a global read cannot trap".into()),
            WastExecute::Wat(_) => {
                // The module must link and then trap while being instantiated.
                let module = self.load(index)?;
                match self.instantiate(module) {
                    Ok(_) => Err(format!("expected trap {message:?}, instantiated")),
                    Err(InstantiationError::Trap(trap)) => check_trap(&trap, message),
                    Err(e) => Err(format!(
                        "expected trap {message:?}, got {}",
                        describe_error(&e)
                    )),
                }
            }
        }
    }

    /// `assert_exception`: the call (or the module's start function) must end with a
    /// wasm exception that no wasm frame caught.
    fn assert_exception(&mut self, index: usize, exec: WastExecute<'_>) -> Check {
        let uncaught = |trap: &TrapInfo| {
            if trap.trap == Trap::UncaughtException {
                Ok(())
            } else {
                Err(format!(
                    "expected an uncaught exception, trapped: {}",
                    trap.message()
                ))
            }
        };
        match exec {
            WastExecute::Invoke(invoke) => match self.invoke(&invoke) {
                Ok(values) => Err(format!(
                    "expected an uncaught exception, returned {}",
                    show_values(&values)
                )),
                Err(Failure::Trap(trap)) => uncaught(&trap),
                Err(other) => Err(other.to_string()),
            },
            WastExecute::Get { .. } => Err("a global read cannot throw".into()),
            WastExecute::Wat(_) => {
                let module = self.load(index)?;
                match self.instantiate(module) {
                    Ok(_) => Err("expected an uncaught exception, instantiated".into()),
                    Err(InstantiationError::Trap(trap)) => uncaught(&trap),
                    Err(e) => Err(format!(
                        "expected an uncaught exception, got {}",
                        describe_error(&e)
                    )),
                }
            }
        }
    }

    /// `assert_invalid` / `assert_malformed`: the module must be rejected as invalid
    /// or malformed. The two are not told apart: wasmparser reports some malformed
    /// binaries as validation errors and the other way round, and the spec's
    /// expected messages are the reference interpreter's wording, not wasmparser's.
    /// A module rejected as *unsupported* (valid wasm that wasmc cannot compile) was
    /// not recognised as invalid, so it fails.
    fn assert_rejected(&self, index: usize, message: &str) -> Check {
        match self.prepared.get(&index) {
            None => Err("internal error: module was not prepared".into()),
            Some(Prepared::Encode(_) | Prepared::InvalidUnderProposal(_)) => Ok(()),
            Some(Prepared::Component(_)) => Err(format!(
                "expected the component to be rejected ({message:?}), it validated"
            )),
            Some(Prepared::Built(Ok(_))) => Err(format!(
                "expected the module to be rejected ({message:?}), it compiled"
            )),
            Some(Prepared::Built(Err(PrepareError::Compile(e)))) => match e.kind {
                CompileErrorKind::Malformed | CompileErrorKind::Invalid => Ok(()),
                CompileErrorKind::Unsupported | CompileErrorKind::Target => Err(format!(
                    "expected the module to be rejected ({message:?}), got: {e}"
                )),
            },
            Some(Prepared::Built(Err(e @ PrepareError::Load(_)))) => Err(e.to_string()),
        }
    }

    /// `assert_malformed_custom` / `assert_invalid_custom`: only a custom section (or
    /// annotation) is wrong. wasmc ignores the contents of custom sections, as the
    /// spec permits, so the module itself must still compile; a text-format rejection
    /// of the annotation by the parser is also a correct outcome.
    fn assert_custom_ignored(&self, index: usize) -> Check {
        match self.prepared.get(&index) {
            None => Err("internal error: module was not prepared".into()),
            Some(Prepared::Encode(_))
            | Some(Prepared::Built(Ok(_)))
            | Some(Prepared::Component(_)) => Ok(()),
            Some(Prepared::Built(Err(e))) => Err(format!(
                "a module whose only defect is in a custom section was rejected: {e}"
            )),
            Some(Prepared::InvalidUnderProposal(e)) => Err(format!(
                "a module whose only defect is in a custom section was rejected: {e}"
            )),
        }
    }
}

/// A module of a directive, text or binary, to be encoded.
enum ModuleRef<'a, 'b> {
    Quote(&'a mut QuoteWat<'b>),
    Wat(&'a mut Wat<'b>),
}

impl ModuleRef<'_, '_> {
    /// The binary; `legacy_text`: a quoted module's text may use the folded legacy
    /// exception-handling syntax.
    fn encode(self, legacy_text: bool) -> Result<Vec<u8>, String> {
        let result = match self {
            ModuleRef::Quote(q @ QuoteWat::QuoteModule(..)) if legacy_text => {
                return encode_legacy_quote(q);
            }
            ModuleRef::Quote(q) => q.encode(),
            ModuleRef::Wat(w) => w.encode(),
        };
        // The error's own rendering names the position inside the quoted text.
        result.map_err(|e| e.message())
    }
}

/// A quoted module of a legacy exception-handling script: unfolded, then parsed.
fn encode_legacy_quote(quote: &mut QuoteWat<'_>) -> Result<Vec<u8>, String> {
    let text = match quote.to_test().map_err(|e| e.message())? {
        wast::QuoteWatTest::Text(bytes) => {
            String::from_utf8(bytes).map_err(|_| "malformed UTF-8 encoding".to_string())?
        }
        wast::QuoteWatTest::Binary(bytes) => return Ok(bytes),
    };
    let text = super::legacy_text::unfold(&text)?;
    let buf = ParseBuffer::new(&text).map_err(|e| e.message())?;
    let mut wat = parser::parse::<Wat<'_>>(&buf).map_err(|e| e.message())?;
    wat.encode().map_err(|e| e.message())
}

/// Why an invocation did not return values.
enum Failure {
    Trap(TrapInfo),
    Harness(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Trap(t) => write!(f, "trapped: {}", t.message()),
            Failure::Harness(m) => f.write_str(m),
        }
    }
}

/// The spec's expected trap text must appear in the runtime's message. The
/// reference interpreter sometimes appends a detail the runtime does not know (the
/// element index in "uninitialized element 2"); such a numeric suffix is accepted.
fn check_trap(trap: &TrapInfo, expected: &str) -> Check {
    let actual = trap.message();
    let with_detail = expected
        .strip_prefix(actual)
        .and_then(|rest| rest.strip_prefix(' '))
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()));
    if actual.contains(expected) || with_detail {
        Ok(())
    } else {
        Err(format!("expected trap {expected:?}, got trap {actual:?}"))
    }
}

fn describe_error(e: &InstantiationError) -> String {
    match e {
        InstantiationError::Unlinkable(m) => format!("unlinkable: {m}"),
        InstantiationError::Trap(t) => format!("trapped during instantiation: {}", t.message()),
        InstantiationError::Resource(m) => format!("instantiation failed: {m}"),
    }
}

fn describe_module(kind: &str, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{kind} ${name}"),
        None => kind.to_string(),
    }
}

fn describe_invoke(kind: &str, invoke: &WastInvoke<'_>) -> String {
    match invoke.module {
        Some(id) => format!("{kind} (invoke ${} {:?})", id.name(), invoke.name),
        None => format!("{kind} (invoke {:?})", invoke.name),
    }
}

fn describe_execute(kind: &str, exec: &WastExecute<'_>) -> String {
    match exec {
        WastExecute::Invoke(invoke) => describe_invoke(kind, invoke),
        WastExecute::Get { global, .. } => format!("{kind} (get {global:?})"),
        WastExecute::Wat(_) => format!("{kind} (module)"),
    }
}

fn show_values(values: &[Val]) -> String {
    if values.is_empty() {
        "no values".to_string()
    } else {
        values
            .iter()
            .map(values::show)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
