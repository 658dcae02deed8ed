//! `wasmc policy EXE`: the policy baked into an executable, read from its
//! `.wasmc_policy` section without running it, for executables of any target.

use std::path::Path;

use object::{Object, ObjectSection};
use serde_json::{Value, json};
use wasmc_abi::policy::{EnvGrant, POLICY_SECTION, Policy, PolicyError};

/// Reads the policy of the executable (or object) at `path`.
pub fn read_policy(path: &Path) -> Result<Policy, String> {
    let name = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let file = object::File::parse(&*bytes).map_err(|_| {
        format!("{name}: not an executable made by wasmc (not an object or executable file)")
    })?;
    let section = file.section_by_name(POLICY_SECTION).ok_or_else(|| {
        format!("{name}: not an executable made by wasmc (it has no {POLICY_SECTION} section)")
    })?;
    let data = section
        .data()
        .map_err(|e| format!("{name}: cannot read the {POLICY_SECTION} section: {e}"))?;
    Policy::decode(data).map_err(|e| match e {
        PolicyError::NotAPolicy => {
            format!(
                "{name}: not an executable made by wasmc (its {POLICY_SECTION} section is foreign)"
            )
        }
        e => format!("{name}: {e}"),
    })
}

/// The policy as a JSON document (stable field names; sizes in bytes, the timeout in
/// nanoseconds, `null` for no limit).
pub fn to_json(policy: &Policy) -> Value {
    let env: Vec<Value> = policy
        .env
        .iter()
        .map(|e| match e {
            EnvGrant::Set { name, value } => json!({ "name": name, "value": value }),
            EnvGrant::Inherit { name } => json!({ "name": name, "inherit": true }),
        })
        .collect();
    let l = &policy.limits;
    json!({
        "sealed": policy.sealed,
        "argv0": policy.argv0,
        "dirs": policy.dirs.iter().map(|d| json!({ "host": d.host, "guest": d.guest })).collect::<Vec<_>>(),
        "env": env,
        "limits": {
            "max_memory": l.max_memory,
            "max_table_elements": l.max_table_elements,
            "max_wasm_stack": l.max_wasm_stack,
            "timeout_ns": l.timeout_ns,
            "fuel": l.fuel,
            "max_gc_heap": l.max_gc_heap,
        },
        "fuel_metering": policy.build.fuel_metering,
        "target": policy.build.target,
        "wasmc_version": policy.build.wasmc_version,
        "module_sha256": policy.build.module_sha256,
    })
}
