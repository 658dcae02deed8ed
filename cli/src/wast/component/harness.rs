//! The directives of a script that concern components: `(component ...)`,
//! `(component definition ...)`, `(component instance ...)`, and invocations and
//! assertions on a component instance's exported functions.

use std::collections::HashMap;
use std::rc::Rc;

use wast::token::Id;
use wast::{WastArg, WastDirective, WastExecute, WastInvoke, WastRet};

use wasmc_runtime::component::canonical::Value;

use super::call::{self, CType, Fail, Transit};
use super::instance::{self, InstantiateError, Instantiated, Item, Loaded};
use super::{Prepared, values};

/// Outcome of one directive: `Err` holds the failure message.
pub type Check = Result<(), String>;

#[derive(Default)]
pub struct Harness {
    pub current: Option<Rc<Instantiated>>,
    named: HashMap<String, Rc<Instantiated>>,
    definitions: HashMap<String, Rc<Prepared>>,
    last_definition: Option<Rc<Prepared>>,
    /// The loaded modules of each component, by the address of its `Prepared` (kept
    /// alive by the `Loaded`), shared by every instantiation of a definition.
    loaded: std::cell::RefCell<HashMap<usize, Rc<Loaded>>>,
}

/// What a directive's module slot holds, as far as components are concerned.
pub enum Slot<'p> {
    /// The component of the directive.
    Component(&'p Result<Rc<Prepared>, String>),
    /// A core module, or no module.
    Other,
}

impl Harness {
    pub fn has_definition(&self, id: Option<Id<'_>>) -> bool {
        match id {
            Some(id) => self.definitions.contains_key(id.name()),
            None => false,
        }
    }

    /// Runs `directive` if it concerns components; `None` leaves it to the core
    /// harness. An unnamed invocation targets the current component instance while
    /// there is one (the script clears it when a core module becomes current);
    /// `last_definition_is_component`: an unnamed `(module instance)` instantiates
    /// the latest definition, which may be a component's.
    pub fn execute(
        &mut self,
        directive: &WastDirective<'_>,
        slot: Slot<'_>,
        last_definition_is_component: bool,
    ) -> Option<(String, Check)> {
        let targets_component = |module: Option<Id<'_>>| match module {
            Some(id) => self.named.contains_key(id.name()),
            None => self.current.is_some(),
        };
        Some(match (directive, slot) {
            (WastDirective::Module(m), Slot::Component(prepared)) => {
                let name = m.name().map(|id| id.name().to_string());
                let outcome = self.instantiate(prepared).map(|instance| {
                    if let Some(name) = name {
                        self.named.insert(name, instance.clone());
                    }
                    self.current = Some(instance);
                });
                if outcome.is_err() {
                    self.current = None;
                }
                ("component".into(), outcome)
            }
            (WastDirective::ModuleDefinition(m), Slot::Component(prepared)) => {
                let outcome = prepared.clone().map(|p| {
                    if let Some(id) = m.name() {
                        self.definitions.insert(id.name().to_string(), p.clone());
                    }
                    self.last_definition = Some(p);
                });
                ("component definition".into(), outcome)
            }
            (
                WastDirective::ModuleInstance {
                    instance, module, ..
                },
                _,
            ) if self.has_definition(*module)
                || (module.is_none() && last_definition_is_component) =>
            {
                let definition = match module {
                    Some(id) => self.definitions.get(id.name()).cloned(),
                    None => self.last_definition.clone(),
                };
                let outcome = match definition {
                    None => Err("no component definition".to_string()),
                    Some(p) => self.instantiate(&Ok(p)).map(|i| {
                        if let Some(id) = instance {
                            self.named.insert(id.name().to_string(), i.clone());
                        }
                        self.current = Some(i);
                    }),
                };
                ("component instance".into(), outcome)
            }
            (WastDirective::Invoke(invoke), _) if targets_component(invoke.module) => (
                format!("invoke {:?}", invoke.name),
                self.invoke(invoke).map(drop).map_err(|e| e.message),
            ),
            (
                WastDirective::AssertReturn {
                    exec: WastExecute::Invoke(invoke),
                    results,
                    ..
                },
                _,
            ) if targets_component(invoke.module) => (
                format!("assert_return (invoke {:?})", invoke.name),
                self.assert_return(invoke, results),
            ),
            (
                WastDirective::AssertTrap {
                    exec: WastExecute::Invoke(invoke),
                    message,
                    ..
                },
                _,
            ) if targets_component(invoke.module) => (
                format!("assert_trap (invoke {:?})", invoke.name),
                match self.invoke(invoke) {
                    Ok(_) => Err(format!("expected trap {message:?}, returned")),
                    Err(fail) => check_trap(&fail, message),
                },
            ),
            (
                WastDirective::AssertTrap {
                    exec: WastExecute::Wat(_),
                    message,
                    ..
                },
                Slot::Component(prepared),
            ) => (
                "assert_trap (component)".into(),
                match self.instantiate_raw(prepared) {
                    Ok(_) => Err(format!("expected trap {message:?}, instantiated")),
                    Err(Err(InstantiateError::Trap(fail))) => check_trap(&fail, message),
                    Err(Err(e)) => Err(format!("expected trap {message:?}, got {e}")),
                    Err(Ok(e)) => Err(e),
                },
            ),
            (
                WastDirective::AssertReturn {
                    exec: WastExecute::Wat(_),
                    ..
                },
                Slot::Component(prepared),
            ) => (
                "assert_return (component)".into(),
                self.instantiate(prepared).map(drop),
            ),
            (WastDirective::AssertUnlinkable { message, .. }, Slot::Component(prepared)) => (
                "assert_unlinkable (component)".into(),
                match self.instantiate_raw(prepared) {
                    Ok(_) => Err(format!("expected unlinkable ({message:?}), instantiated")),
                    Err(Err(InstantiateError::Link(_))) => Ok(()),
                    Err(Err(e)) => Err(format!("expected unlinkable ({message:?}), got {e}")),
                    Err(Ok(e)) => Err(e),
                },
            ),
            (WastDirective::Register { module, .. }, _) if targets_component(*module) => (
                "register".into(),
                Err("registering a component instance is not supported".into()),
            ),
            _ => return None,
        })
    }

    fn instantiate(
        &self,
        prepared: &Result<Rc<Prepared>, String>,
    ) -> Result<Rc<Instantiated>, String> {
        match self.instantiate_raw(prepared) {
            Ok(i) => Ok(i),
            Err(Ok(e)) => Err(e),
            Err(Err(e)) => Err(format!("instantiation failed: {e}")),
        }
    }

    /// `Err(Ok)`: the component was not built; `Err(Err)`: instantiation failed.
    #[allow(clippy::type_complexity)]
    fn instantiate_raw(
        &self,
        prepared: &Result<Rc<Prepared>, String>,
    ) -> Result<Rc<Instantiated>, Result<String, InstantiateError>> {
        let prepared = prepared.as_ref().map_err(|e| Ok(e.clone()))?;
        let loaded = self
            .loaded
            .borrow_mut()
            .entry(Rc::as_ptr(prepared) as usize)
            .or_insert_with(|| Loaded::new(prepared.clone()))
            .clone();
        instance::instantiate(&loaded).map(Rc::new).map_err(Err)
    }

    fn target(&self, module: Option<Id<'_>>) -> Result<Rc<Instantiated>, Fail> {
        match module {
            Some(id) => self.named.get(id.name()).cloned(),
            None => self.current.clone(),
        }
        .ok_or_else(|| Fail::new("no component instance"))
    }

    fn invoke(&self, invoke: &WastInvoke<'_>) -> Result<(Option<CType>, Option<Value>), Fail> {
        let instance = self.target(invoke.module)?;
        let func = match instance.exports.get(invoke.name) {
            Some(Item::Func(f)) => f.clone(),
            _ => return Err(Fail::new(format!("no exported function {:?}", invoke.name))),
        };
        if func.params.len() != invoke.args.len() {
            return Err(Fail::new(format!(
                "{} arguments given, the function takes {}",
                invoke.args.len(),
                func.params.len()
            )));
        }
        let args = func
            .params
            .iter()
            .zip(&invoke.args)
            .map(|((_, ty), arg)| match arg {
                WastArg::Component(v) => values::to_value(ty, v),
                _ => Err("a core argument to a component function".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(Fail::new)?;
        let mut transit = Transit::default();
        let value = call::call_lifted(&func, args, &mut transit, false)?;
        Ok((func.result.clone(), value))
    }

    fn assert_return(&self, invoke: &WastInvoke<'_>, expected: &[WastRet<'_>]) -> Check {
        let (ty, value) = self
            .invoke(invoke)
            .map_err(|f| format!("trapped: {}", f.message))?;
        match (expected, ty, value) {
            ([], _, None) => Ok(()),
            ([WastRet::Component(e)], Some(ty), Some(v)) => values::check(&ty, e, &v),
            ([WastRet::Component(_)], _, v) | ([], _, v) => Err(format!(
                "expected {} results, got {}",
                expected.len(),
                usize::from(v.is_some())
            )),
            (e, _, v) => Err(format!(
                "expected {} results, got {}",
                e.len(),
                usize::from(v.is_some())
            )),
        }
    }
}

/// The expected message must appear in the failure's (the reference tests quote
/// wasmtime's, some with its "wasm trap: " prefix).
fn check_trap(fail: &Fail, expected: &str) -> Check {
    let wanted = expected.strip_prefix("wasm trap: ").unwrap_or(expected);
    if fail.message.contains(wanted) {
        Ok(())
    } else {
        Err(format!(
            "expected trap {expected:?}, got trap {:?}",
            fail.message
        ))
    }
}
