//! Glue code between the host (C calling convention) and wasm (`tail` convention).
//!
//! * Host stub, one per imported function: has the import's wasm signature, loads
//!   `VMContext.host_fns[import]` and calls it as `extern "C" fn(vmctx, params...)
//!   -> result`. The runtime installs it in the import's `VMFuncRef` when the import
//!   is satisfied by a host function.
//! * Array trampoline, one per type index: `extern "C" fn(code, vmctx, values)` reads
//!   the parameters from the 16-byte `values` slots, calls `code` with the wasm
//!   convention and writes the results back to `values[0..results]`.

use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{
    self, AbiParam, InstBuilder, MemFlagsData, Signature, UserFuncName, types,
};
use cranelift_codegen::isa::TargetIsa;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use rayon::prelude::*;
use wasmc_abi::{FuncType, ImportKind, ModuleInfo, Trap, ValType};

use crate::CompileError;
use crate::translate::environ::{ir_type, trap_code, wasm_signature};

/// Compiled glue code (no relocations: it only makes indirect calls).
pub(crate) struct Glue {
    pub bytes: Vec<u8>,
    pub alignment: u64,
}

/// Signature of an array trampoline.
pub(crate) fn array_signature(isa: &dyn TargetIsa) -> Signature {
    let mut sig = Signature::new(isa.default_call_conv());
    sig.params.extend([AbiParam::new(types::I64); 3]);
    sig
}

fn compile(isa: &dyn TargetIsa, func: ir::Function, what: &str) -> Result<Glue, CompileError> {
    let mut ctx = Context::for_function(func);
    let code = ctx
        .compile(isa, &mut ControlPlane::default())
        .map_err(|e| {
            CompileError::target(format!("code generation failed for {what}: {:?}", e.inner))
        })?;
    debug_assert!(code.buffer.relocs().is_empty());
    Ok(Glue {
        bytes: code.buffer.data().to_vec(),
        alignment: u64::from(code.buffer.alignment),
    })
}

/// One host stub per imported function, in import order.
pub(crate) fn host_stubs(
    info: &ModuleInfo,
    isa: &dyn TargetIsa,
) -> Result<Vec<Glue>, CompileError> {
    let layout = info.layout();
    let imports: Vec<u32> = info
        .imports
        .iter()
        .filter_map(|i| match i.kind {
            ImportKind::Func { type_index } => Some(type_index),
            _ => None,
        })
        .collect();
    imports
        .par_iter()
        .enumerate()
        .map(|(import, &type_index)| {
            let ty = &info.types[type_index as usize];
            let import = import as u32;
            let func = if info.array_host_imports.contains(&import) {
                array_host_stub(ty, import, layout.host_fn(import), isa)
            } else {
                host_stub(ty, layout.host_fn(import), isa)
            };
            compile(isa, func, &format!("the host stub of import {import}"))
        })
        .collect()
}

fn host_stub(ty: &FuncType, host_fn_offset: i32, isa: &dyn TargetIsa) -> ir::Function {
    let mut func = ir::Function::with_name_signature(UserFuncName::default(), wasm_signature(ty));
    let mut fctx = FunctionBuilderContext::new();
    let mut builder = FunctionBuilder::new(&mut func, &mut fctx);
    let entry = builder.create_block();
    builder.append_block_params_for_function_params(entry);
    builder.switch_to_block(entry);
    builder.seal_block(entry);
    let args = builder.block_params(entry).to_vec();
    if ty.results.len() > 1 {
        // A C function cannot return several values; the runtime never installs a
        // host function for such an import (only wasm exports can satisfy it).
        builder.ins().trap(trap_code(Trap::HostError));
    } else {
        let mut sig = Signature::new(isa.default_call_conv());
        sig.params.push(AbiParam::new(types::I64));
        sig.params
            .extend(ty.params.iter().map(|t| AbiParam::new(ir_type(*t))));
        sig.returns
            .extend(ty.results.iter().map(|t| AbiParam::new(ir_type(*t))));
        let sig = builder.import_signature(sig);
        let vmctx = args[0];
        let host_fn = builder.ins().load(
            types::I64,
            MemFlagsData::trusted().with_readonly(),
            vmctx,
            host_fn_offset,
        );
        let call = builder.ins().call_indirect(sig, host_fn, &args);
        let results = builder.inst_results(call).to_vec();
        builder.ins().return_(&results);
    }
    builder.finalize(isa.frontend_config());
    func
}

/// The host stub of an import lowered from a component's host: stores the
/// arguments in 16-byte slots on its stack, calls `extern "C" fn(vmctx, import,
/// values)` and returns what the host wrote to `values[0]` (the canonical ABI lowers
/// to at most one result; more traps, as for the C stub).
fn array_host_stub(
    ty: &FuncType,
    import: u32,
    host_fn_offset: i32,
    isa: &dyn TargetIsa,
) -> ir::Function {
    let mut func = ir::Function::with_name_signature(UserFuncName::default(), wasm_signature(ty));
    let mut fctx = FunctionBuilderContext::new();
    let mut builder = FunctionBuilder::new(&mut func, &mut fctx);
    let entry = builder.create_block();
    builder.append_block_params_for_function_params(entry);
    builder.switch_to_block(entry);
    builder.seal_block(entry);
    let args = builder.block_params(entry).to_vec();
    if ty.results.len() > 1 {
        builder.ins().trap(trap_code(Trap::HostError));
        builder.finalize(isa.frontend_config());
        return func;
    }
    let slots = ty.params.len().max(ty.results.len()).max(1) as u32;
    let slot = builder.create_sized_stack_slot(ir::StackSlotData::new(
        ir::StackSlotKind::ExplicitSlot,
        slots * SLOT as u32,
        4,
    ));
    let values = builder.ins().stack_addr(types::I64, slot, 0);
    let flags = MemFlagsData::new().with_notrap();
    for (i, (arg, ty)) in args[1..].iter().zip(&ty.params).enumerate() {
        let offset = i as i32 * SLOT;
        // Zero-extended to the whole slot, as the array trampolines write results.
        let low = match ty {
            ValType::I32 => builder.ins().uextend(types::I64, *arg),
            ValType::F32 => {
                let bits = builder.ins().bitcast(types::I32, MemFlagsData::new(), *arg);
                builder.ins().uextend(types::I64, bits)
            }
            ValType::F64 => builder.ins().bitcast(types::I64, MemFlagsData::new(), *arg),
            ValType::V128 => {
                builder.ins().store(flags, *arg, values, offset);
                continue;
            }
            ValType::I64 | ValType::FuncRef | ValType::ExternRef | ValType::Ref(_) => *arg,
        };
        let zero = builder.ins().iconst(types::I64, 0);
        builder.ins().store(flags, low, values, offset);
        builder.ins().store(flags, zero, values, offset + 8);
    }
    let mut sig = Signature::new(isa.default_call_conv());
    sig.params.extend([
        AbiParam::new(types::I64),
        AbiParam::new(types::I32),
        AbiParam::new(types::I64),
    ]);
    let sig = builder.import_signature(sig);
    let vmctx = args[0];
    let host_fn = builder.ins().load(
        types::I64,
        MemFlagsData::trusted().with_readonly(),
        vmctx,
        host_fn_offset,
    );
    let import = builder.ins().iconst(types::I32, i64::from(import));
    builder
        .ins()
        .call_indirect(sig, host_fn, &[vmctx, import, values]);
    let results: Vec<_> = ty
        .results
        .iter()
        .map(|t| builder.ins().load(ir_type(*t), flags, values, 0))
        .collect();
    builder.ins().return_(&results);
    builder.finalize(isa.frontend_config());
    func
}

/// One array trampoline per type index.
pub(crate) fn array_trampolines(
    info: &ModuleInfo,
    isa: &dyn TargetIsa,
) -> Result<Vec<Glue>, CompileError> {
    info.types
        .par_iter()
        .enumerate()
        .map(|(index, ty)| {
            let func = array_trampoline(ty, isa);
            compile(isa, func, &format!("the array trampoline of type {index}"))
        })
        .collect()
}

const SLOT: i32 = 16;

fn array_trampoline(ty: &FuncType, isa: &dyn TargetIsa) -> ir::Function {
    let mut func = ir::Function::with_name_signature(UserFuncName::default(), array_signature(isa));
    let mut fctx = FunctionBuilderContext::new();
    let mut builder = FunctionBuilder::new(&mut func, &mut fctx);
    let entry = builder.create_block();
    builder.append_block_params_for_function_params(entry);
    builder.switch_to_block(entry);
    builder.seal_block(entry);
    let (code, vmctx, values) = {
        let p = builder.block_params(entry);
        (p[0], p[1], p[2])
    };
    // `values` is host memory owned by the caller: never traps.
    let flags = MemFlagsData::new().with_notrap();
    let mut args = vec![vmctx];
    for (i, param) in ty.params.iter().enumerate() {
        args.push(
            builder
                .ins()
                .load(ir_type(*param), flags, values, i as i32 * SLOT),
        );
    }
    let sig = builder.import_signature(wasm_signature(ty));
    let call = builder.ins().call_indirect(sig, code, &args);
    let results = builder.inst_results(call).to_vec();
    for (i, (result, ty)) in results.iter().zip(&ty.results).enumerate() {
        let offset = i as i32 * SLOT;
        // Scalars are written zero-extended to the whole slot, so the host reads the
        // same bits whatever width it uses.
        let low = match ty {
            ValType::V128 => {
                builder.ins().store(flags, *result, values, offset);
                continue;
            }
            ValType::I32 => builder.ins().uextend(types::I64, *result),
            ValType::F32 => {
                let bits = builder
                    .ins()
                    .bitcast(types::I32, MemFlagsData::new(), *result);
                builder.ins().uextend(types::I64, bits)
            }
            ValType::F64 => builder
                .ins()
                .bitcast(types::I64, MemFlagsData::new(), *result),
            ValType::I64 | ValType::FuncRef | ValType::ExternRef | ValType::Ref(_) => *result,
        };
        let zero = builder.ins().iconst(types::I64, 0);
        builder.ins().store(flags, low, values, offset);
        builder.ins().store(flags, zero, values, offset + 8);
    }
    builder.ins().return_(&[]);
    builder.finalize(isa.frontend_config());
    func
}
