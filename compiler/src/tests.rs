//! Unit tests: compile small modules for both supported architectures and check
//! errors and the shape of the emitted object.

use object::{Object, ObjectSymbol};

use crate::{CompileErrorKind, CompileOptions, OptLevel, Triple, compile, read_input};

fn opts(triple: &str) -> CompileOptions {
    CompileOptions {
        triple: triple.parse().unwrap(),
        opt_level: OptLevel::Speed,
        explicit_bounds_checks: false,
        ..CompileOptions::default()
    }
}

const TRIPLES: [&str; 4] = [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
];

/// Exercises every non-SIMD feature the translator implements.
const KITCHEN_SINK: &str = r#"
(module $sink
  (type $bin (func (param i32 i32) (result i32)))
  (type $v (func))
  (import "env" "host" (func $host (param i32 f64) (result i64)))
  (import "env" "g" (global $ig i32))
  (import "env" "mg" (global $img (mut i32)))
  (import "env" "mem2" (memory $m2 1))
  (memory $m 1 10)
  (memory $m64 i64 1)
  (table $t 4 funcref)
  (table $ext 2 externref)
  (global $g (mut i64) (i64.const 5))
  (global $gc i32 (i32.add (i32.const 1) (global.get $ig)))
  (global $gv (mut v128) (v128.const i64x2 0 0))
  (data $d (memory $m) (i32.const 8) "hello")
  (data $p "passive")
  (elem $e (table $t) (i32.const 0) func $add $sub)
  (elem $pe funcref (ref.func $add) (ref.null func))
  (elem declare func $fac)
  (export "add" (func $add))
  (export "mem" (memory $m))
  (start $init)
  (func $init)
  (func $add (type $bin) (i32.add (local.get 0) (local.get 1)))
  (func $sub (type $bin) (i32.sub (local.get 0) (local.get 1)))
  (func $fac (param i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0))
      (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fac (i64.sub (local.get 0) (i64.const 1)))))))
  (func $tail (param i64 i64) (result i64)
    (if (i64.eqz (local.get 0)) (then (return (local.get 1))))
    (return_call $tail (i64.sub (local.get 0) (i64.const 1)) (i64.mul (local.get 0) (local.get 1))))
  (func $tail_ind (param i32) (result i32)
    (return_call_indirect $t (type $bin) (local.get 0) (i32.const 2) (i32.const 1)))
  (func $multi (param i32) (result i32 i64 f32)
    (local.get 0) (i64.const 2) (f32.const 3))
  (func $blocks (param i32) (result i32)
    (local i64 f32 f64 v128 funcref externref)
    (block $out (result i32)
      (local.get 0)
      (loop $l (param i32) (result i32)
        (drop)
        (br_if $out (local.get 0) (i32.gt_u (local.get 0) (i32.const 10)))
        (local.set 0 (i32.add (local.get 0) (i32.const 1)))
        (i32.const 0)
        (br_table $l $out $l (local.get 0))))
    (drop)
    (i32.const 1))
  (func $if_params (param i32) (result i32)
    (i32.const 5)
    (if (param i32) (result i32) (local.get 0) (then (i32.const 1) (i32.add)))
    (i32.const 7)
    (if (param i32) (result i32) (local.get 0) (then) (else (drop) (i32.const 3)))
    (i32.add))
  (func $unreach (param i32) (result i32)
    (block (result i32)
      (br 0 (i32.const 1))
      (i32.add (block (result i32) (unreachable)) (i32.const 2))
      (if (then (nop)) (else (nop)))))
  (func $indirect (param i32) (result i32)
    (call_indirect $t (type $bin) (i32.const 1) (i32.const 2) (local.get 0)))
  (func $memory (param i32) (result i32)
    (i32.store offset=4 (local.get 0) (i32.load8_s (local.get 0)))
    (i64.store32 (local.get 0) (i64.load32_u offset=0xffff0000 (local.get 0)))
    (f64.store $m2 (i32.const 0) (f64.load $m2 (i32.const 8)))
    (i64.store $m64 (i64.const 8) (i64.load16_s $m64 offset=3 (i64.const 0)))
    (drop (memory.grow (i32.const 1)))
    (drop (memory.grow $m64 (i64.const 1)))
    (memory.fill (i32.const 0) (i32.const 1) (i32.const 2))
    (memory.copy $m $m2 (i32.const 0) (i32.const 1) (i32.const 2))
    (memory.init $p (i32.const 0) (i32.const 1) (i32.const 2))
    (data.drop $p)
    (i32.add (memory.size) (i32.wrap_i64 (memory.size $m64))))
  (func $tables (param i32) (result i32)
    (table.set $t (i32.const 0) (table.get $t (local.get 0)))
    (table.fill $ext (i32.const 0) (ref.null extern) (i32.const 1))
    (table.copy $t $t (i32.const 0) (i32.const 1) (i32.const 1))
    (table.init $t $pe (i32.const 0) (i32.const 0) (i32.const 1))
    (elem.drop $pe)
    (drop (table.grow $t (ref.func $fac) (i32.const 1)))
    (i32.add (table.size $t) (ref.is_null (table.get $ext (i32.const 0)))))
  (func $globals (result i32)
    (global.set $g (i64.add (global.get $g) (i64.const 1)))
    (global.set $img (global.get $gc))
    (global.set $gv (global.get $gv))
    (i32.wrap_i64 (global.get $g)))
  (func $numeric (param i32 i64 f32 f64) (result i32)
    (drop (i32.div_s (local.get 0) (i32.const 3)))
    (drop (i64.rem_s (local.get 1) (local.get 1)))
    (drop (i32.rem_u (local.get 0) (local.get 0)))
    (drop (i64.div_u (local.get 1) (local.get 1)))
    (drop (i32.rotl (local.get 0) (i32.popcnt (local.get 0))))
    (drop (i64.clz (i64.ctz (local.get 1))))
    (drop (i32.trunc_f32_s (local.get 2)))
    (drop (i64.trunc_f64_u (local.get 3)))
    (drop (i32.trunc_sat_f64_u (local.get 3)))
    (drop (i64.trunc_sat_f32_s (local.get 2)))
    (drop (f32.nearest (f32.min (local.get 2) (f32.max (local.get 2) (f32.const -0)))))
    (drop (f64.copysign (f64.sqrt (local.get 3)) (f64.floor (local.get 3))))
    (drop (f32.demote_f64 (f64.promote_f32 (local.get 2))))
    (drop (f64.convert_i64_u (local.get 1)))
    (drop (f32.convert_i32_u (local.get 0)))
    (drop (i64.reinterpret_f64 (f64.reinterpret_i64 (local.get 1))))
    (drop (i64.extend32_s (i64.extend_i32_u (i32.extend8_s (local.get 0)))))
    (drop (select (local.get 2) (f32.const 1) (local.get 0)))
    (drop (select (result v128) (v128.const i32x4 1 2 3 4) (v128.const i32x4 0 0 0 0) (local.get 0)))
    (f64.lt (local.get 3) (f64.ceil (local.get 3))))
)
"#;

fn compile_wat(
    wat: &str,
    opts: &CompileOptions,
) -> Result<crate::CompiledModule, crate::CompileError> {
    compile(&read_input(wat.as_bytes())?, opts)
}

#[test]
fn kitchen_sink_compiles_for_every_target() {
    for triple in TRIPLES {
        for explicit in [false, true] {
            let mut o = opts(triple);
            o.explicit_bounds_checks = explicit;
            let m = compile_wat(KITCHEN_SINK, &o).unwrap_or_else(|e| panic!("{triple}: {e}"));
            assert_eq!(m.info.guard_pages, !explicit);
            assert_eq!(m.info.name.as_deref(), Some("sink"));
            assert_eq!(m.info.num_imported_funcs, 1);
            assert_eq!(m.info.funcs.len(), m.info.functions.len() - 1);
            assert_eq!(m.info.funcs[1].name.as_deref(), Some("add"));
            for f in &m.info.funcs {
                assert!(f.code_len > 0);
                assert!(f.traps.windows(2).all(|w| w[0].0 <= w[1].0));
            }
            // Round trip of the metadata the object carries: the functions' facts
            // go to the function table, the rest to the serialized metadata.
            let mut decoded = wasmc_abi::ModuleInfo::deserialize(&m.info.serialize()).unwrap();
            let table_bytes = wasmc_abi::func_table::encode(&m.info.funcs).unwrap();
            let table = wasmc_abi::func_table::FuncTable::parse(&table_bytes).unwrap();
            decoded.funcs = (0..table.len() as u32)
                .map(|i| table.func_info(i).unwrap())
                .collect();
            assert_eq!(decoded, m.info);
        }
    }
}

#[test]
fn object_has_descriptor_and_named_symbols() {
    for triple in TRIPLES {
        check_object(triple);
    }
}

fn check_object(triple: &str) {
    let m = compile_wat(KITCHEN_SINK, &opts(triple)).unwrap();
    let file = object::File::parse(&*m.object).unwrap();
    let names: Vec<String> = file
        .symbols()
        .filter_map(|s| s.name().ok().map(str::to_string))
        .collect();
    let descriptor = file
        .symbols()
        .find(|s| s.name() == Ok(wasmc_abi::DESCRIPTOR_SYMBOL))
        .expect("descriptor symbol");
    assert!(descriptor.is_global());
    assert_eq!(
        descriptor.size(),
        std::mem::size_of::<wasmc_abi::ModuleDescriptor>() as u64
    );
    for expected in [
        "wasm[2]::add",
        "wasm[4]::fac",
        "wasmc_host_stub[0]::env.host",
        "wasmc_array_trampoline[0]",
        "wasmc_metadata",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing in {names:?}"
        );
    }
    // Only libcalls may be undefined; this module needs none.
    let undefined: Vec<_> = file
        .symbols()
        .filter(|s| s.is_undefined() && !s.name().unwrap_or("").is_empty())
        .map(|s| s.name().unwrap().to_string())
        .collect();
    assert!(undefined.is_empty(), "undefined symbols: {undefined:?}");
    // The descriptor has four pointer relocations (metadata and three tables).
    let data_relocs: usize = file
        .sections()
        .filter(|s| {
            use object::ObjectSection;
            s.name().is_ok_and(|n| n.contains("data"))
        })
        .map(|s| {
            use object::ObjectSection;
            s.relocations().count()
        })
        .sum();
    assert!(data_relocs >= 4, "{data_relocs}");
}

/// A policy goes to its own `.wasmc_policy` section, decodable as it was given, and the
/// descriptor points at it (one more relocation); without one there is no section.
#[test]
fn policy_is_emitted_in_its_own_section() {
    use object::ObjectSection;
    use wasmc_abi::policy::{POLICY_SECTION, Policy};
    let policy = Policy {
        sealed: true,
        argv0: Some("tool".into()),
        ..Policy::default()
    };
    for triple in TRIPLES {
        let with = CompileOptions {
            policy: Some(policy.clone()),
            ..opts(triple)
        };
        let m = compile_wat(KITCHEN_SINK, &with).unwrap();
        let file = object::File::parse(&*m.object).unwrap();
        let section = file
            .section_by_name(POLICY_SECTION)
            .expect("policy section");
        assert_eq!(Policy::decode(section.data().unwrap()), Ok(policy.clone()));
        let m = compile_wat(KITCHEN_SINK, &opts(triple)).unwrap();
        let file = object::File::parse(&*m.object).unwrap();
        assert!(file.section_by_name(POLICY_SECTION).is_none());
    }
}

/// Every atomic operator compiles on every target, with and without explicit bounds
/// checks, and records its alignment and wait traps.
#[test]
fn atomics_compile_for_every_target() {
    let wat = r#"(module (memory 1 1 shared) (memory i64 1 1 shared)
      (func (export "f") (param i32 i64) (result i64)
        (drop (i32.atomic.load offset=4 (local.get 0)))
        (drop (i64.atomic.load8_u (local.get 0)))
        (drop (i64.atomic.load32_u 1 (local.get 1)))
        (i32.atomic.store16 (local.get 0) (i32.const 7))
        (i64.atomic.store (local.get 0) (i64.const 7))
        (drop (i32.atomic.rmw8.add_u (local.get 0) (i32.const 1)))
        (drop (i64.atomic.rmw.sub (local.get 0) (i64.const 1)))
        (drop (i32.atomic.rmw16.and_u (local.get 0) (i32.const 1)))
        (drop (i64.atomic.rmw32.or_u (local.get 0) (i64.const 1)))
        (drop (i32.atomic.rmw.xor (local.get 0) (i32.const 1)))
        (drop (i64.atomic.rmw8.xchg_u 1 (local.get 1) (i64.const 1)))
        (drop (i32.atomic.rmw.cmpxchg (local.get 0) (i32.const 1) (i32.const 2)))
        (drop (i64.atomic.rmw16.cmpxchg_u (local.get 0) (i64.const 1) (i64.const 2)))
        (drop (memory.atomic.notify (local.get 0) (i32.const 1)))
        (drop (memory.atomic.wait32 (local.get 0) (i32.const 0) (i64.const 0)))
        (drop (memory.atomic.wait64 1 (local.get 1) (i64.const 0) (i64.const -1)))
        atomic.fence
        (i64.atomic.rmw.add (local.get 0) (local.get 1))))"#;
    for triple in TRIPLES {
        for explicit in [false, true] {
            let mut o = opts(triple);
            o.explicit_bounds_checks = explicit;
            let m = compile_wat(wat, &o).unwrap_or_else(|e| panic!("{triple}: {e}"));
            assert!(m.info.memories.iter().all(|m| m.shared));
            let traps: Vec<_> = m.info.funcs[0].traps.iter().map(|t| t.1).collect();
            use wasmc_abi::Trap;
            assert!(traps.contains(&Trap::HeapMisaligned), "{triple}: {traps:?}");
            assert!(
                traps.contains(&Trap::AtomicWaitNonSharedMemory),
                "{traps:?}"
            );
            assert!(traps.contains(&Trap::MemoryOutOfBounds), "{traps:?}");
        }
    }
}

#[test]
fn traps_are_recorded() {
    let m = compile_wat(
        "(module (memory 1) (func (param i32) (result i32) (call 1) (i32.div_s (local.get 0) (i32.load (local.get 0)))) (func unreachable))",
        // Inlined, `unreachable` would make the rest of function 0 dead code.
        &CompileOptions {
            inline: crate::Inlining::None,
            ..opts("x86_64-unknown-linux-gnu")
        },
    )
    .unwrap();
    let traps: Vec<_> = m.info.funcs[0].traps.iter().map(|t| t.1).collect();
    use wasmc_abi::Trap;
    assert!(traps.contains(&Trap::MemoryOutOfBounds), "{traps:?}");
    assert!(traps.contains(&Trap::IntegerDivisionByZero), "{traps:?}");
    assert!(traps.contains(&Trap::IntegerOverflow), "{traps:?}");
    assert!(traps.contains(&Trap::StackOverflow), "{traps:?}");
    assert!(
        m.info.funcs[1]
            .traps
            .iter()
            .any(|t| t.1 == Trap::UnreachableCodeReached)
    );
}

#[test]
fn malformed_inputs() {
    let e = compile(b"\0asm\x01\0\0\0\x01\x05", &CompileOptions::default()).unwrap_err();
    assert_eq!(e.kind, CompileErrorKind::Malformed, "{e}");
    assert!(e.offset.is_some());
    let e = compile(b"not wasm at all", &CompileOptions::default()).unwrap_err();
    assert_eq!(e.kind, CompileErrorKind::Malformed, "{e}");
    let e = read_input(b"(module (func (result i32) i32.const))").unwrap_err();
    assert_eq!(e.kind, CompileErrorKind::Malformed);
    let shown = e.to_string();
    assert!(!shown.contains('\n') && shown.contains("line 1"), "{shown}");
}

#[test]
fn invalid_module_reports_offset() {
    let e = compile_wat(
        "(module (func (result i32) i64.const 1))",
        &CompileOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind, CompileErrorKind::Invalid, "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with("invalid module at byte offset 0x"),
        "{shown}"
    );
    assert!(shown.contains("type mismatch"), "{shown}");
    assert!(!shown.contains('\n'));
}

#[test]
fn unsupported_features_and_targets() {
    for triple in [
        "riscv64gc-unknown-linux-gnu",
        "x86_64-pc-windows-msvc",
        "aarch64-apple-darwin",
        "wasm32-wasip1",
    ] {
        let e = compile_wat("(module)", &opts(triple)).unwrap_err();
        assert_eq!(e.kind, CompileErrorKind::Target, "{triple}: {e}");
        assert!(e.to_string().contains(triple));
    }
}

/// WebAssembly 3.0 validation: what 3.0 allows compiles (or is unsupported, never
/// invalid), and an invalid module stays invalid even when translation would stop
/// earlier at an unsupported construct.
#[test]
fn validates_with_wasm3_rules() {
    let d = CompileOptions::default();
    // 3.0 allows `global.get` of an immutable defined global in constant expressions.
    compile_wat(
        "(module (global $a i32 (i32.const 1)) (global i32 (global.get $a))
           (memory 1) (data (global.get $a) \"x\"))",
        &d,
    )
    .unwrap();
    // GC (part of 3.0) compiles.
    for wat in [
        "(module (type (struct (field i32))))",
        "(module (rec (type (func)) (type (func))))",
        "(module (type (sub (func))))",
        "(module (func (result i32) (ref.is_null (ref.i31 (i32.const 1)))))",
    ] {
        compile_wat(wat, &d).unwrap_or_else(|e| panic!("{wat}: {e}"));
    }
    // The shared type is unsupported, but the body below is invalid: invalid wins.
    let e = compile_wat(
        "(module (type (shared (func))) (func (result i32) (i64.const 0)))",
        &d,
    )
    .unwrap_err();
    assert_eq!(e.kind, CompileErrorKind::Invalid, "{e}");
    // Beyond 3.0: valid with every feature (here shared-everything threads), so
    // unsupported rather than invalid.
    let e = compile_wat("(module (type (shared (func))))", &d).unwrap_err();
    assert_eq!(e.kind, CompileErrorKind::Unsupported, "{e}");
    // Beyond 3.0 and compiled: wide arithmetic, custom page sizes, legacy exceptions.
    for wat in [
        "(module (func (param i64 i64 i64 i64) (result i64 i64)
           (i64.add128 (local.get 0) (local.get 1) (local.get 2) (local.get 3))))",
        "(module (memory 1 (pagesize 1)))",
        "(module (tag $e) (func try throw $e catch $e catch_all end))",
    ] {
        compile_wat(wat, &d).unwrap_or_else(|e| panic!("{wat}: {e}"));
    }
    // A frame-opening operator in unreachable code must keep `end`s paired.
    compile_wat(
        "(module (func (result i32) (unreachable) (try_table (result i32) (i32.const 0)) (drop) (i32.const 1)))",
        &d,
    )
    .unwrap();
    // Also a legacy `try`, closed by `end` or by `delegate` (which ends a frame
    // without `end`), and the clauses of a reachable `try` whose body is not.
    compile_wat(
        "(module (tag $e (param i32))
           (func (result i32)
             unreachable
             try (result i32) i32.const 0 catch $e catch_all i32.const 1 end drop
             try (result i32) i32.const 0 delegate 0 drop
             i32.const 1)
           (func (result i32)
             try (result i32) i32.const 7 throw $e catch $e catch_all unreachable end))",
        &d,
    )
    .unwrap();
}

/// Legacy `try`: calls in its body get a handler site, calls in its catch arms
/// (which it does not protect) and after a `delegate` to the caller do not.
#[test]
fn legacy_try_handler_sites() {
    for triple in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        let m = compile_wat(
            r#"(module (tag $t) (func $f (throw $t))
                 (func
                   try (call $f) (call $f) catch $t (call $f) catch_all (call $f) end)
                 (func
                   try (call $f) delegate 0 (call $f)))"#,
            &opts(triple),
        )
        .unwrap();
        assert_eq!(
            m.info.funcs[1].handlers.len(),
            2,
            "{triple}: body calls only"
        );
        assert_eq!(m.info.funcs[2].handlers.len(), 1, "{triple}");
    }
}

/// Typed function references: typed value types in signatures, locals, globals and
/// tables, and their operators, on every target; null checks are trap sites.
#[test]
fn typed_function_references() {
    let wat = r#"
(module
  (type $ii (func (param i32) (result i32)))
  (type $self (func (param (ref null $self)) (result i32)))
  (func $inc (type $ii) (i32.add (local.get 0) (i32.const 1)))
  (global $g (ref $ii) (ref.func $inc))
  (table $t 2 (ref null $ii) (ref.func $inc))
  (table $u 1 (ref $ii) (ref.func $inc))
  (elem declare func $inc)
  (func (export "call") (param i32) (result i32)
    (call_ref $ii (local.get 0) (global.get $g)))
  (func (export "tail") (param (ref null $ii)) (result i32)
    (return_call_ref $ii (i32.const 1) (local.get 0)))
  (func (export "non_null") (param (ref null $ii)) (result (ref $ii))
    (ref.as_non_null (local.get 0)))
  (func (export "on_null") (param (ref null $ii)) (result i32)
    (block $null
      (return (call_ref $ii (i32.const 2) (br_on_null $null (local.get 0)))))
    (i32.const -1))
  (func (export "on_non_null") (param (ref null $ii)) (result i32)
    (block $l (result (ref $ii))
      (br_on_non_null $l (local.get 0))
      (return (i32.const -1)))
    (drop) (i32.const 1))
  (func (export "local") (result i32)
    (local $f (ref $ii))
    (local.set $f (table.get $u (i32.const 0)))
    (call_ref $ii (i32.const 3) (local.get $f)))
  (func $rec (type $self) (i32.const 0))
)"#;
    for triple in TRIPLES {
        let m = compile_wat(wat, &opts(triple)).unwrap_or_else(|e| panic!("{triple}: {e}"));
        let traps: Vec<_> = m
            .info
            .funcs
            .iter()
            .flat_map(|f| &f.traps)
            .map(|t| t.1)
            .collect();
        assert!(
            traps.contains(&wasmc_abi::Trap::NullFunctionReference),
            "{triple}"
        );
        assert!(traps.contains(&wasmc_abi::Trap::NullReference), "{triple}");
    }
    let m = compile_wat(wat, &CompileOptions::default()).unwrap();
    use wasmc_abi::{HeapType, ValType};
    assert_eq!(
        m.info.types[1].params,
        [ValType::reference(true, HeapType::Concrete(1))]
    );
    assert_eq!(
        m.info.globals[0].content,
        ValType::reference(false, HeapType::Concrete(0))
    );
    // `(ref null func)` keeps its 2.0 spelling, so 2.0 types compare equal.
    let m = compile_wat(
        "(module (global (ref null func) (ref.null nofunc)))",
        &CompileOptions::default(),
    )
    .unwrap();
    assert_eq!(m.info.globals[0].content, ValType::FuncRef);
    let m = compile_wat(
        "(module (global anyref (ref.null any)))",
        &CompileOptions::default(),
    )
    .unwrap();
    assert_eq!(
        m.info.globals[0].content,
        ValType::reference(true, HeapType::Any)
    );
    let m = compile_wat("(module (func (param exnref)))", &CompileOptions::default()).unwrap();
    assert_eq!(
        m.info.types[0].params,
        [ValType::reference(true, HeapType::Exn)]
    );
}

/// Exception tags are module entities (imported, defined, exported); calls inside a
/// `try_table` get a handler site, calls outside do not.
#[test]
fn tags_and_exception_handlers() {
    let m = compile_wat(
        r#"(module (type (func (param f32))) (import "m" "t" (tag (type 0)))
             (tag (export "u") (param i32)))"#,
        &CompileOptions::default(),
    )
    .unwrap();
    assert_eq!(m.info.num_imported_tags, 1);
    assert_eq!(m.info.tags, [0, 1]);
    assert!(matches!(
        m.info.imports[0].kind,
        wasmc_abi::ImportKind::Tag { type_index: 0 }
    ));
    assert_eq!(m.info.exports[0].kind, wasmc_abi::ExportKind::Tag);
    for triple in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        let m = compile_wat(
            r#"(module (tag $t (param i32)) (func $f (throw $t (i32.const 1)))
                 (func (result i32)
                   (block $h (result i32)
                     (try_table (catch $t $h) (call $f) (call $f))
                     (call $f)
                     (i32.const 0))))"#,
            &opts(triple),
        )
        .unwrap();
        assert!(m.info.funcs[0].handlers.is_empty(), "{triple}");
        let handlers = &m.info.funcs[1].handlers;
        assert_eq!(
            handlers.len(),
            2,
            "{triple}: one site per call in try_table"
        );
        assert!(handlers[0].ret < handlers[1].ret, "{triple}");
        assert!(
            handlers
                .iter()
                .all(|h| h.handler < m.info.funcs[1].code_len && h.frame_offset >= 16),
            "{triple}: {handlers:?}"
        );
    }
    let e = compile_wat(
        "(module (tag (param i32) (result i32)))",
        &CompileOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind, CompileErrorKind::Invalid, "{e}");
}

#[test]
fn hostile_inputs_do_not_panic() {
    let wasm = read_input(KITCHEN_SINK.as_bytes()).unwrap();
    let o = opts("x86_64-unknown-linux-gnu");
    for len in (0..wasm.len()).step_by(7) {
        assert!(compile(&wasm[..len], &o).is_err());
    }
    // Deterministic pseudo-random byte flips.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        let mut bytes = wasm.clone();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed as usize) % bytes.len();
            bytes[i] = (seed >> 32) as u8;
        }
        let _ = compile(&bytes, &o);
    }
    for n in 0..50u64 {
        let bytes: Vec<u8> = (0..n * 3).map(|i| (i * 2654435761 % 251) as u8).collect();
        let _ = compile(&bytes, &o);
    }
}

#[test]
fn output_is_deterministic() {
    let o = opts("x86_64-unknown-linux-gnu");
    let a = compile_wat(KITCHEN_SINK, &o).unwrap().object;
    let b = compile_wat(KITCHEN_SINK, &o).unwrap().object;
    assert_eq!(a, b);
}

#[test]
fn host_triple_default() {
    assert_eq!(CompileOptions::default().triple, Triple::host());
}

/// The linear memory's base never moves, so a function loads it once: a run of
/// stores through the same pointer costs one store instruction each, not a store
/// plus a reload of the base (which doubled the memory traffic of interpreter loops
/// such as CPython's, and made them 2x slower than under wasmtime).
#[test]
fn memory_base_is_loaded_once_per_function() {
    let stores: String = (0..32)
        .map(|i| format!("(i32.store offset={} (local.get 0) (local.get 1))\n", i * 4))
        .collect();
    let wat = format!(
        r#"(module
            (memory 1)
            (func (export "one") (param i32 i32)
                (i32.store (local.get 0) (local.get 1)))
            (func (export "many") (param i32 i32)
                (i32.store (local.get 0) (local.get 1))
                {stores}))"#
    );
    for triple in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        let module = compile_wat(&wat, &opts(triple)).unwrap();
        let one = module.info.funcs[0].code_len;
        let many = module.info.funcs[1].code_len;
        // One store with a small immediate offset is 4 bytes on both targets; a
        // reload of the base would add at least 4 more.
        let per_store = f64::from(many - one) / 32.0;
        assert!(
            per_store < 6.0,
            "{triple}: {per_store} bytes per store ({one} -> {many}): is the base reloaded?"
        );
    }
}

/// Fuel instrumentation found in one function's IR: accesses to
/// `VMRuntimeState::fuel_consumed` (loads and stores through a load of
/// `vmctx->runtime`) and `OutOfFuel` traps.
fn fuel_code(func: &cranelift_codegen::ir::Function) -> (usize, usize) {
    use cranelift_codegen::ir::{InstructionData, Opcode};
    use wasmc_abi::VMContextLayout;
    let vmctx = func.dfg.block_params(func.layout.entry_block().unwrap())[0];
    let out_of_fuel = crate::translate::environ::trap_code(wasmc_abi::Trap::OutOfFuel);
    let is_runtime_ptr = |v| match func.dfg.value_def(v).inst() {
        Some(inst) => matches!(
            func.dfg.insts[inst],
            InstructionData::Load { opcode: Opcode::Load, arg, offset, .. }
                if arg == vmctx && i32::from(offset) == VMContextLayout::RUNTIME
        ),
        None => false,
    };
    let (mut accesses, mut traps) = (0, 0);
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            match func.dfg.insts[inst] {
                InstructionData::Load { arg, offset, .. }
                    if is_runtime_ptr(arg)
                        && i32::from(offset) == VMContextLayout::RUNTIME_FUEL_CONSUMED =>
                {
                    accesses += 1
                }
                InstructionData::Store { args, offset, .. }
                    if is_runtime_ptr(args[1])
                        && i32::from(offset) == VMContextLayout::RUNTIME_FUEL_CONSUMED =>
                {
                    accesses += 1
                }
                InstructionData::Trap { code, .. } if code == out_of_fuel => traps += 1,
                InstructionData::CondTrap { code, .. } if code == out_of_fuel => traps += 1,
                _ => {}
            }
        }
    }
    (accesses, traps)
}

const FUEL_SAMPLES: [&str; 3] = [
    KITCHEN_SINK,
    r#"(module
        (tag $t (param i32))
        (func $thrower (param i32) (result i32) (throw $t (local.get 0)))
        (func (export "f") (param i32) (result i32)
          (drop (block $h (result i32)
            (try_table (result i32) (catch $t $h) (call $thrower (local.get 0)))))
          (loop (br_if 0 (i32.eqz (local.get 0))))
          (return_call $thrower (local.get 0))))"#,
    r#"(module (type $t (func (result i32)))
        (table 1 funcref)
        (func (result i32) (call_indirect (type $t) (i32.const 0))))"#,
];

/// Without `fuel_metering` no fuel code is emitted at all (metered code is a
/// compile-time choice, unmetered code must not pay for it); with it, every
/// function loads, stores and checks the count.
#[test]
fn fuel_instrumentation_only_when_asked_for() {
    for wat in FUEL_SAMPLES {
        let wasm = read_input(wat.as_bytes()).unwrap();
        let mut o = opts("x86_64-unknown-linux-gnu");
        for func in crate::translate::translate_to_ir(&wasm, &o).unwrap() {
            assert_eq!(fuel_code(&func), (0, 0), "{}", func.display());
        }
        o.fuel_metering = true;
        for func in crate::translate::translate_to_ir(&wasm, &o).unwrap() {
            let (accesses, traps) = fuel_code(&func);
            // A load at entry, at least one store before leaving, one trap per check.
            assert!(accesses >= 2 && traps >= 1, "{}", func.display());
        }
    }
}

/// Metered code compiles for every target, records `OutOfFuel` trap sites in
/// every function, and changes nothing else in the module's metadata.
#[test]
fn fuel_trap_sites_are_recorded_on_every_target() {
    use wasmc_abi::Trap;
    for triple in TRIPLES {
        for wat in FUEL_SAMPLES {
            let plain = compile_wat(wat, &opts(triple)).unwrap();
            let mut o = opts(triple);
            o.fuel_metering = true;
            let metered = compile_wat(wat, &o).unwrap();
            assert!(metered.info.fuel_metering && !plain.info.fuel_metering);
            for (p, m) in plain.info.funcs.iter().zip(&metered.info.funcs) {
                assert!(!p.traps.iter().any(|t| t.1 == Trap::OutOfFuel));
                assert!(m.traps.iter().any(|t| t.1 == Trap::OutOfFuel), "{triple}");
                assert!(m.code_len > p.code_len);
            }
            assert_eq!(plain.info.funcs.len(), metered.info.funcs.len());
        }
    }
}

/// A loop checks the fuel at its header: one check more than the entry check.
#[test]
fn fuel_checks_at_entry_and_loop_headers() {
    let checks = |wat: &str| {
        let wasm = read_input(wat.as_bytes()).unwrap();
        let mut o = opts("x86_64-unknown-linux-gnu");
        o.fuel_metering = true;
        crate::translate::translate_to_ir(&wasm, &o).unwrap()[0].clone()
    };
    let straight = checks("(module (func (drop (i32.add (i32.const 1) (i32.const 2)))))");
    assert_eq!(fuel_code(&straight).1, 1);
    let loops = checks("(module (func (loop (loop (br 1)))))");
    assert_eq!(fuel_code(&loops).1, 3);
    // Unreachable code after `br` emits nothing, loops included.
    let dead = checks("(module (func (block (br 0) (loop (br 0)))))");
    assert_eq!(fuel_code(&dead).1, 1);
}

/// The Spectre guards of one function's IR, checked for their shape: each selects
/// 0 when the condition of a `trapnz` that precedes it holds (so the address 0 is
/// never accessed architecturally) and its result is the address of a load or store.
fn guards_in(func: &cranelift_codegen::ir::Function) -> usize {
    use cranelift_codegen::ir::{InstructionData, Opcode};
    let mut trapped_on = Vec::new();
    let mut guards = 0;
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            let data = &func.dfg.insts[inst];
            if let InstructionData::CondTrap {
                opcode: Opcode::Trapnz,
                arg,
                ..
            } = data
            {
                trapped_on.push(*arg);
            }
            if data.opcode() != Opcode::SelectSpectreGuard {
                continue;
            }
            guards += 1;
            let args = func.dfg.inst_args(inst);
            assert!(
                trapped_on.contains(&args[0]),
                "guard without a trap on its condition before it:\n{}",
                func.display()
            );
            let null = func
                .dfg
                .value_def(args[1])
                .inst()
                .map(|i| &func.dfg.insts[i]);
            assert!(
                matches!(null, Some(InstructionData::UnaryImm { opcode: Opcode::Iconst, imm })
                    if imm.bits() == 0),
                "guard does not select 0:\n{}",
                func.display()
            );
            let addr = func.dfg.first_result(inst);
            let used_as_address = func.layout.blocks().any(|b| {
                func.layout.block_insts(b).any(|i| match func.dfg.insts[i] {
                    InstructionData::Load { arg, .. } => arg == addr,
                    InstructionData::Store { args, .. } => args[1] == addr,
                    _ => false,
                })
            });
            assert!(used_as_address, "unused guard:\n{}", func.display());
        }
    }
    guards
}

/// (module, explicit bounds checks, Spectre guards expected in each function).
const SPECTRE_SAMPLES: [(&str, bool, &[usize]); 5] = [
    // memory64 is always checked explicitly.
    (
        r#"(module (memory i64 1)
            (func (param i64) (result i32) (i32.load offset=8 (local.get 0)))
            (func (param i64) (v128.store (local.get 0) (v128.load (local.get 0)))))"#,
        false,
        &[1, 2],
    ),
    // A static offset beyond the guard region is checked even with guard pages.
    (
        r#"(module (memory 1)
            (func (param i32) (result i32) (i32.load offset=0x80000000 (local.get 0)))
            (func (param i32) (result i32) (i32.load offset=16 (local.get 0))))"#,
        false,
        &[1, 0],
    ),
    // With explicit checks, every access.
    (
        r#"(module (memory 1)
            (func (param i32 i32)
              (i64.store16 (local.get 0) (i64.load8_s offset=3 (local.get 1)))
              (v128.store32_lane 1 (local.get 0) (v128.load64_splat (local.get 1)))))"#,
        true,
        &[4],
    ),
    // Table accesses, with or without explicit memory checks.
    (
        r#"(module (type $t (func (result i32))) (table 2 funcref)
            (func (param i32) (result i32) (call_indirect (type $t) (local.get 0)))
            (func (param i32) (result i32) (return_call_indirect (type $t) (local.get 0)))
            (func (param i32) (table.set (local.get 0) (table.get (local.get 0)))))"#,
        false,
        &[1, 1, 2],
    ),
    (
        r#"(module (type $t (func)) (table i64 2 funcref) (memory 1)
            (func (param i64) (call_indirect (type $t) (local.get 0))))"#,
        true,
        &[1],
    ),
];

/// Every explicitly checked memory access and every indexed table access gets a
/// Spectre guard, also after Cranelift's optimizer has run; guard-page accesses get
/// none, and with `spectre_guards` off nothing gets one.
#[test]
fn spectre_guards_where_bounds_are_checked() {
    use cranelift_codegen::control::ControlPlane;
    use cranelift_codegen::ir::Opcode;
    for triple in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        for (wat, explicit, expected) in SPECTRE_SAMPLES {
            let wasm = read_input(wat.as_bytes()).unwrap();
            for spectre_guards in [true, false] {
                let o = CompileOptions {
                    explicit_bounds_checks: explicit,
                    spectre_guards,
                    ..opts(triple)
                };
                let isa = crate::isa::build(&o).unwrap();
                let funcs = crate::translate::translate_to_ir(&wasm, &o).unwrap();
                assert_eq!(funcs.len(), expected.len());
                for (func, &n) in funcs.into_iter().zip(expected) {
                    let n = if spectre_guards { n } else { 0 };
                    assert_eq!(guards_in(&func), n, "{triple}:\n{}", func.display());
                    let mut ctx = cranelift_codegen::Context::for_function(func);
                    ctx.optimize(&*isa, &mut ControlPlane::default()).unwrap();
                    let optimized = ctx
                        .func
                        .layout
                        .blocks()
                        .flat_map(|b| ctx.func.layout.block_insts(b))
                        .filter(|i| ctx.func.dfg.insts[*i].opcode() == Opcode::SelectSpectreGuard)
                        .count();
                    // The optimizer may merge guards of the same address, never drop all.
                    assert_eq!(optimized == 0, n == 0, "{triple}:\n{}", ctx.func.display());
                }
            }
        }
    }
}

/// Guard-page accesses have no bounds check and so no guard: a module without tables
/// and without explicit checks compiles to the same machine code with guards on and
/// off. Tables and explicit checks do change it (the option is not ignored).
#[test]
fn spectre_guards_leave_guard_page_code_unchanged() {
    use object::ObjectSection;
    let text = |wat: &str, o: &CompileOptions| {
        let m = compile_wat(wat, o).unwrap();
        let file = object::File::parse(&*m.object).unwrap();
        let text = file.section_by_name(".text").expect(".text");
        (text.data().unwrap().to_vec(), m.info.funcs)
    };
    let guard_pages = r#"(module
        (memory 1 100)
        (global $g (mut i32) (i32.const 0))
        (func $f (export "f") (param i32 i64) (result i64)
          (i32.store8 offset=7 (local.get 0) (i32.load16_u (local.get 0)))
          (i64.store offset=65536 (local.get 0) (i64.load32_s offset=3 (local.get 0)))
          (f64.store (local.get 0) (f64.load offset=1 (local.get 0)))
          (v128.store offset=32 (local.get 0) (v128.load8x8_s (local.get 0)))
          (v128.store8_lane 3 (local.get 0) (v128.load32_zero (local.get 0)))
          (memory.fill (local.get 0) (i32.const 0) (i32.const 8))
          (memory.copy (local.get 0) (i32.const 8) (i32.const 8))
          (global.set $g (i32.add (memory.size) (memory.grow (i32.const 1))))
          (block (block (br_table 0 1 (local.get 0))))
          (i64.add (local.get 1) (call $f (local.get 0) (local.get 1)))))"#;
    for triple in TRIPLES {
        let on = opts(triple);
        let off = CompileOptions {
            spectre_guards: false,
            ..opts(triple)
        };
        let (a, a_funcs) = text(guard_pages, &on);
        let (b, b_funcs) = text(guard_pages, &off);
        assert!(
            a == b,
            "{triple}: guard-page code differs with spectre_guards"
        );
        assert_eq!(format!("{a_funcs:?}"), format!("{b_funcs:?}"));
        for (wat, explicit, _) in SPECTRE_SAMPLES {
            let on = CompileOptions {
                explicit_bounds_checks: explicit,
                ..on.clone()
            };
            let off = CompileOptions {
                explicit_bounds_checks: explicit,
                ..off.clone()
            };
            assert!(text(wat, &on).0 != text(wat, &off).0, "{triple}: {wat}");
        }
    }
}

/// memory64: a guarded access's condition includes the overflow of
/// `index + offset + size` (a wrapped sum passes the length compare, and the
/// unguarded address would then be just below the base); unguarded code keeps the
/// trapping add.
#[test]
fn memory64_guard_covers_overflow() {
    use cranelift_codegen::ir::Opcode;
    let wasm = read_input(
        b"(module (memory i64 1) (func (param i64) (result i32) (i32.load offset=8 (local.get 0))))",
    )
    .unwrap();
    for spectre_guards in [true, false] {
        let o = CompileOptions {
            spectre_guards,
            ..opts("x86_64-unknown-linux-gnu")
        };
        let func = &crate::translate::translate_to_ir(&wasm, &o).unwrap()[0];
        let def = |v| func.dfg.value_def(v).inst().expect("an instruction result");
        let insts: Vec<_> = func
            .layout
            .blocks()
            .flat_map(|b| func.layout.block_insts(b))
            .collect();
        let opcode_count = |op| {
            insts
                .iter()
                .filter(|i| func.dfg.insts[**i].opcode() == op)
                .count()
        };
        if !spectre_guards {
            assert_eq!(opcode_count(Opcode::UaddOverflowTrap), 1);
            assert_eq!(opcode_count(Opcode::SelectSpectreGuard), 0);
            continue;
        }
        assert_eq!(opcode_count(Opcode::UaddOverflowTrap), 0);
        let guard = insts
            .iter()
            .find(|i| func.dfg.insts[**i].opcode() == Opcode::SelectSpectreGuard)
            .expect("a guard");
        let cond = def(func.dfg.inst_args(*guard)[0]);
        assert_eq!(
            func.dfg.insts[cond].opcode(),
            Opcode::Bor,
            "{}",
            func.display()
        );
        let from_overflow = func
            .dfg
            .inst_args(cond)
            .iter()
            .any(|a| func.dfg.insts[def(*a)].opcode() == Opcode::UaddOverflow);
        assert!(from_overflow, "{}", func.display());
    }
}

/// Loads in one function's IR whose address is a value loaded from the vmctx at
/// `offset` (the pointer to a global's storage, a `VMTable` or a `VMMemory`), with
/// the offset of each load: what `global.get` and table and memory accesses leave
/// when they are not constants.
fn loads_through_vmctx_field(func: &cranelift_codegen::ir::Function, offset: i32) -> Vec<i32> {
    use cranelift_codegen::ir::{InstructionData, Opcode};
    let vmctx = func.dfg.block_params(func.layout.entry_block().unwrap())[0];
    let is_field = |v| match func.dfg.value_def(v).inst() {
        Some(inst) => matches!(
            func.dfg.insts[inst],
            InstructionData::Load { opcode: Opcode::Load, arg, offset: o, .. }
                if arg == vmctx && i32::from(o) == offset
        ),
        None => false,
    };
    let mut offsets = Vec::new();
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            if let InstructionData::Load { arg, offset, .. } = func.dfg.insts[inst]
                && is_field(arg)
            {
                offsets.push(i32::from(offset));
            }
        }
    }
    offsets
}

/// `global.get` is a constant exactly for defined immutable globals with constant
/// initializers (runtime-lib/tests/codegen_invariants.rs checks the values).
#[test]
fn only_immutable_defined_constant_globals_are_folded() {
    let wat = r#"(module
        (global $imp (import "env" "imp") i32)
        (global $c i32 (i32.const 42))
        (global $ext i64 (i64.add (i64.const 40) (i64.const 2)))
        (global $m (mut i32) (i32.const 1))
        (global $from_imp i32 (global.get $imp))
        (func (result i32) (global.get $c))
        (func (result i64) (global.get $ext))
        (func (result i32) (global.get $m))
        (func (result i32) (global.get $imp))
        (func (result i32) (global.get $from_imp)))"#;
    let wasm = read_input(wat.as_bytes()).unwrap();
    let o = opts("x86_64-unknown-linux-gnu");
    let info = crate::module_env::ModuleEnv::parse(&wasm).unwrap().info;
    let layout = info.layout();
    let funcs = crate::translate::translate_to_ir(&wasm, &o).unwrap();
    // Function i reads global `[1, 2, 3, 0, 4][i]`.
    for (func, (global, folded)) in
        funcs
            .iter()
            .zip([(1, true), (2, true), (3, false), (0, false), (4, false)])
    {
        let loads = loads_through_vmctx_field(func, layout.global(global)).len()
            + loads_from_vmctx_at(func, layout.inline_global(global));
        assert_eq!(
            loads == 0,
            folded,
            "global {global}: folded should be {folded}:\n{}",
            func.display()
        );
    }
}

/// Defined numeric globals that are not exported live in the `VMContext` (one
/// load); exported, imported and reference-typed ones are reached through their
/// pointer (the runtime object outlives the instance or holds a root).
#[test]
fn only_private_numeric_globals_are_inline() {
    let wat = r#"(module
        (global $imp (import "env" "imp") (mut i32))
        (global $sp (mut i32) (i32.const 1024))
        (global $exported (export "g") (mut i32) (i32.const 1))
        (global $ref (mut funcref) (ref.null func))
        (global $f (mut f64) (f64.const 1))
        (func (result i32) (global.get $imp))
        (func (result i32) (global.get $sp))
        (func (result i32) (global.get $exported))
        (func (result funcref) (global.get $ref))
        (func (result f64) (global.get $f)))"#;
    let wasm = read_input(wat.as_bytes()).unwrap();
    let info = crate::module_env::ModuleEnv::parse(&wasm).unwrap().info;
    let layout = info.layout();
    let funcs =
        crate::translate::translate_to_ir(&wasm, &opts("x86_64-unknown-linux-gnu")).unwrap();
    for (func, (global, inline)) in
        funcs
            .iter()
            .zip([(0, false), (1, true), (2, false), (3, false), (4, true)])
    {
        assert_eq!(info.global_is_inline(global), inline, "global {global}");
        let direct = loads_from_vmctx_at(func, layout.inline_global(global));
        let through = loads_through_vmctx_field(func, layout.global(global)).len();
        assert_eq!(
            (direct > 0, through > 0),
            (inline, !inline),
            "global {global}: inline should be {inline}:\n{}",
            func.display()
        );
    }
}

/// Loads straight from the vmctx at `offset` in one function's IR.
fn loads_from_vmctx_at(func: &cranelift_codegen::ir::Function, offset: i32) -> usize {
    use cranelift_codegen::ir::{InstructionData, Opcode};
    let vmctx = func.dfg.block_params(func.layout.entry_block().unwrap())[0];
    func.layout
        .blocks()
        .flat_map(|b| func.layout.block_insts(b))
        .filter(|&inst| {
            matches!(
                func.dfg.insts[inst],
                InstructionData::Load { opcode: Opcode::Load, arg, offset: o, .. }
                    if arg == vmctx && i32::from(o) == offset
            )
        })
        .count()
}

/// `call_indirect` through a table with minimum == maximum compares with a
/// constant; through any other table it loads the current length.
#[test]
fn fixed_table_length_is_a_constant() {
    use wasmc_abi::VMContextLayout;
    for (table, fixed) in [
        ("2 2 funcref", true),
        ("2 3 funcref", false),
        ("2 funcref", false),
    ] {
        let wat = format!(
            r#"(module (table {table}) (type $r (func (result i32)))
                (func (param i32) (result i32) (call_indirect (type $r) (local.get 0))))"#
        );
        let wasm = read_input(wat.as_bytes()).unwrap();
        let info = crate::module_env::ModuleEnv::parse(&wasm).unwrap().info;
        let o = opts("x86_64-unknown-linux-gnu");
        let func = &crate::translate::translate_to_ir(&wasm, &o).unwrap()[0];
        let loads = loads_through_vmctx_field(func, info.layout().table(0));
        assert_eq!(
            !loads.contains(&VMContextLayout::TABLE_LENGTH),
            fixed,
            "(table {table}):\n{}",
            func.display()
        );
    }
}

/// Alias regions: a linear-memory store does not invalidate a loaded global, so
/// reading `__stack_pointer`-like globals between stores costs nothing once loaded.
#[test]
fn memory_stores_keep_globals_loaded() {
    let body = |n: usize| -> String {
        (0..n)
            .map(|i| {
                format!(
                    "(i32.store offset={} (global.get $g) (local.get 0))\n",
                    i * 4
                )
            })
            .collect()
    };
    let wat = format!(
        r#"(module
            (memory 1)
            (global $g (mut i32) (i32.const 1024))
            (func (param i32) {})
            (func (param i32) {}))"#,
        body(1),
        body(33)
    );
    for triple in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        let module = compile_wat(&wat, &opts(triple)).unwrap();
        let one = module.info.funcs[0].code_len;
        let many = module.info.funcs[1].code_len;
        // A store with an immediate offset is 4 bytes on both targets (x86_64: up
        // to 7 with a 32-bit displacement); a reload of the global adds 4 or more.
        let per_store = f64::from(many - one) / 32.0;
        assert!(
            per_store < 7.5,
            "{triple}: {per_store} bytes per store ({one} -> {many}): is the global reloaded?"
        );
    }
}

/// `--target-cpu`: the chosen CPU's features are recorded for the runtime's check
/// (which refuses code the CPU cannot run), AVX2 brings AVX (Cranelift's preset
/// lacks it), the baseline stays x86-64-v2 whatever is named, and bad names are
/// refused with the list of good ones.
#[test]
fn target_cpu_features_are_recorded_and_names_checked() {
    let wasm = read_input(
        br#"(module (func (export "f") (param i32 f64) (result i32 f64)
                (i32.ctz (i32.shl (local.get 0) (local.get 0)))
                (f64.add (local.get 1) (local.get 1))))"#,
    )
    .unwrap();
    let x86 = "x86_64-unknown-linux-gnu";
    let with_cpu = |triple: &str, cpu: Option<&str>| CompileOptions {
        target_cpu: cpu.map(str::to_string),
        ..opts(triple)
    };
    let baseline = compile(&wasm, &with_cpu(x86, None)).unwrap();
    let features = &baseline.info.cpu_features;
    for f in ["has_sse41", "has_sse42", "has_popcnt"] {
        assert!(features.iter().any(|g| g == f), "{f} in {features:?}");
    }
    assert!(!features.iter().any(|g| g == "has_avx"), "{features:?}");
    let v3 = compile(&wasm, &with_cpu(x86, Some("x86-64-v3"))).unwrap();
    let features = &v3.info.cpu_features;
    for f in [
        "has_sse41",
        "has_avx",
        "has_avx2",
        "has_bmi2",
        "has_lzcnt",
        "has_fma",
    ] {
        assert!(features.iter().any(|g| g == f), "{f} in {features:?}");
    }
    assert_ne!(
        baseline.object, v3.object,
        "x86-64-v3 code is the baseline's"
    );
    // A CPU name below the baseline still gets it (no libm calls for rounding).
    let core2 = compile(&wasm, &with_cpu(x86, Some("core2"))).unwrap();
    assert!(core2.info.cpu_features.iter().any(|g| g == "has_sse41"));
    assert_eq!(
        compile(&wasm, &with_cpu(x86, Some("x86-64-v2")))
            .unwrap()
            .object,
        baseline.object
    );
    // aarch64's baseline needs nothing optional.
    let arm = compile(&wasm, &with_cpu("aarch64-unknown-linux-gnu", None)).unwrap();
    assert_eq!(arm.info.cpu_features, Vec::<String>::new());

    for (triple, cpu, says) in [
        (x86, "pentium9", "not a CPU wasmc knows for x86_64"),
        (x86, "has_avx2", "not a CPU wasmc knows for x86_64"),
        (
            "aarch64-unknown-linux-gnu",
            "haswell",
            "not a CPU wasmc knows for aarch64",
        ),
    ] {
        let err = compile(&wasm, &with_cpu(triple, Some(cpu))).unwrap_err();
        assert_eq!(err.kind, CompileErrorKind::Target, "{cpu}");
        assert!(err.message.contains(says), "{cpu}: {err}");
    }
    let err = compile(&wasm, &with_cpu(x86, Some("nope"))).unwrap_err();
    assert!(
        err.message.contains("x86-64-v3") && err.message.contains("znver3"),
        "{err}"
    );
    let foreign = if cfg!(target_arch = "x86_64") {
        "aarch64-unknown-linux-gnu"
    } else {
        x86
    };
    let err = compile(&wasm, &with_cpu(foreign, Some("native"))).unwrap_err();
    assert!(err.message.contains("--target-cpu native"), "{err}");
    let native = compile(
        &wasm,
        &with_cpu(&Triple::host().to_string(), Some("native")),
    );
    assert!(native.is_ok(), "{:?}", native.err());
}

/// GC types reach the metadata with their recursion groups, finality, supertypes
/// and the kind of every concrete reference; a cast to a final type is one id
/// compare, a cast to a non-final one reads the supertype display inline, and
/// only a target deeper than the display calls the `is_subtype` builtin.
#[test]
fn gc_types_and_casts() {
    use wasmc_abi::{CompositeType, HeapType, StorageType, ValType};
    let wat = r#"
      (module
        (rec
          (type $list (sub (struct (field i8) (field (ref null $list)))))
          (type $arr (array (mut (ref null $list)))))
        (type $sub (sub final $list (struct (field i8) (field (ref null $list)) (field i64))))
        (func (export "final") (param anyref) (result i32)
          (ref.test (ref $sub) (local.get 0)))
        (func (export "open") (param anyref) (result i32)
          (ref.test (ref $list) (local.get 0))))
    "#;
    let m = compile_wat(wat, &CompileOptions::default()).unwrap();
    // The two functions share one (implicit) function type.
    assert_eq!(m.info.rec_groups, [2, 1, 1]);
    let list = &m.info.sub_types[0];
    assert!(!list.is_final && list.supertype.is_none());
    let CompositeType::Struct(fields) = &list.composite else {
        panic!("{list:?}")
    };
    assert_eq!(fields[0].storage, StorageType::I8);
    assert_eq!(
        fields[1].storage,
        StorageType::Val(ValType::reference(true, HeapType::ConcreteStruct(0)))
    );
    assert!(matches!(
        m.info.sub_types[1].composite,
        CompositeType::Array(_)
    ));
    assert!(m.info.sub_types[2].is_final);
    assert_eq!(m.info.sub_types[2].supertype, Some(0));
    assert!(m.info.uses_gc_heap());

    let bytes = wat::parse_str(wat).unwrap();
    let funcs = crate::translate::translate_to_ir(&bytes, &CompileOptions::default()).unwrap();
    let builtin_calls = |f: &cranelift_codegen::ir::Function| {
        f.display().to_string().matches("call_indirect").count()
    };
    assert_eq!(builtin_calls(&funcs[0]), 0, "{}", funcs[0].display());
    assert_eq!(builtin_calls(&funcs[1]), 0, "{}", funcs[1].display());
    // The open cast loads the type-row table from the runtime state.
    let text = funcs[1].display().to_string();
    let rows = wasmc_abi::VMContextLayout::RUNTIME_GC_TYPE_ROWS;
    assert!(text.contains(&format!("+{rows}\n")), "{text}");

    // A chain deeper than the display: casts to its deepest types call the builtin.
    let depth = wasmc_abi::gc::TYPE_ROW_DISPLAY_LEN;
    let mut chain = String::from("(type $t0 (sub (struct)))");
    for d in 1..=depth {
        chain += &format!("(type $t{d} (sub $t{} (struct)))", d - 1);
    }
    let deep = format!(
        "(module {chain}
           (func (export \"shallow\") (param anyref) (result i32)
             (ref.test (ref $t{}) (local.get 0)))
           (func (export \"deep\") (param anyref) (result i32)
             (ref.test (ref $t{depth}) (local.get 0))))",
        depth - 1
    );
    let funcs = crate::translate::translate_to_ir(
        &wat::parse_str(&deep).unwrap(),
        &CompileOptions::default(),
    )
    .unwrap();
    assert_eq!(builtin_calls(&funcs[0]), 0, "{}", funcs[0].display());
    assert_eq!(builtin_calls(&funcs[1]), 1, "{}", funcs[1].display());
}

/// `n` values kept live at once (all loaded, then summed in reverse), so that the
/// register allocator spills: the body of a leaf with a frame of about `n * size`.
fn many_live_values(n: usize, ty: &str) -> String {
    let loads: String = (0..n)
        .map(|i| format!("({ty}.load offset={} (local.get 0))\n", i * 16))
        .collect();
    let add = if ty == "v128" { "i64x2.add" } else { "i64.add" };
    format!("{loads}{}", format!("({add})\n").repeat(n - 1))
}

/// Leaves (no call of any kind) with frames of at most a page go without the
/// stack-limit check; calls and large frames keep it (see translate/stack_check.rs).
#[test]
fn stack_check_only_where_a_frame_can_pass_the_reserve() {
    let wat = format!(
        r#"(module
            (memory 1)
            (func $leaf_spills (export "leaf_spills") (param i32) (result i64)
                {})
            (func $calls (export "calls") (param i32) (result i64)
                (i64.add (call $leaf_spills (local.get 0)) (i64.const 1)))
            (func $big_leaf (export "big_leaf") (param i32) (result v128)
                {})
            (func $builtin (export "builtin") (param i32) (result i32)
                (memory.grow (local.get 0))))"#,
        many_live_values(40, "i64"),
        many_live_values(400, "v128"),
    );
    for triple in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        let module = compile_wat(&wat, &opts(triple)).unwrap();
        let checked: Vec<bool> = module
            .info
            .funcs
            .iter()
            .map(|f| {
                f.traps
                    .iter()
                    .any(|(_, t)| *t == wasmc_abi::Trap::StackOverflow)
            })
            .collect();
        assert_eq!(
            checked,
            [false, true, true, true],
            "{triple}: stack checks of leaf_spills, calls, big_leaf, builtin"
        );
    }
}

// ---- inlining (`crate::inline`) ----

/// The functions that `caller`'s machine code calls directly, by symbol name
/// (`wasm[N]::name`), read from the object's relocations.
fn direct_calls(object: &[u8], caller: &str) -> Vec<String> {
    use object::{ObjectSection, RelocationTarget};
    let file = object::File::parse(object).unwrap();
    let sym = file
        .symbols()
        .find(|s| s.name().is_ok_and(|n| n.ends_with(&format!("::{caller}"))))
        .unwrap_or_else(|| panic!("no symbol for {caller}"));
    let text = file.section_by_index(sym.section_index().unwrap()).unwrap();
    let range = sym.address()..sym.address() + sym.size();
    text.relocations()
        .filter(|(offset, _)| range.contains(offset))
        .filter_map(|(_, reloc)| match reloc.target() {
            RelocationTarget::Symbol(i) => file.symbol_by_index(i).ok(),
            _ => None,
        })
        .filter_map(|s| s.name().ok().map(str::to_string))
        .filter(|n| n.starts_with("wasm["))
        .collect()
}

/// The `FuncInfo` of the function named `name`.
fn func_info<'m>(m: &'m crate::CompiledModule, name: &str) -> &'m wasmc_abi::FuncInfo {
    m.info
        .funcs
        .iter()
        .find(|f| f.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no function {name}"))
}

const INLINING: &str = r#"
(module
  (memory 1)
  (func $get (param i32) (result i32) (i32.load offset=4 (local.get 0)))
  (func $twice (param i32) (result i32)
    (i32.add (call $get (local.get 0)) (call $get (i32.add (local.get 0) (i32.const 8)))))
  (func $fac (param i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0))
      (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fac (i64.sub (local.get 0) (i64.const 1)))))))
  (func $even (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 1))
      (else (call $odd (i32.sub (local.get 0) (i32.const 1))))))
  (func $odd (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
      (else (call $even (i32.sub (local.get 0) (i32.const 1))))))
  (func $main (export "main") (param i32) (result i64) (local $sum i32)
    ;; In a loop: `twice` (after taking `get` twice) is larger than what is inlined
    ;; outside loops.
    (loop $l
      (local.set $sum (i32.add (local.get $sum) (call $twice (local.get 0))))
      (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
    (i64.add
      (i64.extend_i32_u (i32.add (local.get $sum) (call $even (local.get 0))))
      (call $fac (i64.const 5)))))
"#;

#[test]
fn small_callees_are_inlined_with_their_own_callees() {
    let m = compile_wat(INLINING, &CompileOptions::default()).unwrap();
    // `twice` took `get` twice; `main` took the final `twice` (with both `get`s).
    assert!(direct_calls(&m.object, "twice").is_empty());
    let main_calls = direct_calls(&m.object, "main");
    assert!(
        !main_calls
            .iter()
            .any(|c| c.ends_with("::twice") || c.ends_with("::get"))
    );
    // Backtrace bookkeeping: `get`'s code inside `main` names get, then twice.
    let main = func_info(&m, "main");
    let get = m
        .info
        .funcs
        .iter()
        .position(|f| f.name.as_deref() == Some("get"));
    let twice = m
        .info
        .funcs
        .iter()
        .position(|f| f.name.as_deref() == Some("twice"));
    let (get, twice) = (get.unwrap() as u32, twice.unwrap() as u32);
    assert!(
        main.inlined.iter().any(|r| r.funcs == [get, twice]),
        "{:?}",
        main.inlined
    );
    // The trapping load of `get` lies in such a range.
    let in_get = |offset: u32| {
        main.inlined
            .iter()
            .any(|r| r.start <= offset && offset < r.end && r.funcs[0] == get)
    };
    assert!(
        main.traps.iter().any(|&(offset, _)| in_get(offset)),
        "traps {:?} inlined {:?}",
        main.traps,
        main.inlined
    );
}

#[test]
fn recursive_callees_stay_calls() {
    let m = compile_wat(INLINING, &CompileOptions::default()).unwrap();
    let main_calls = direct_calls(&m.object, "main");
    // A self-recursive and two mutually recursive functions: never inlined, so
    // recursion still meets a stack-limit check in a prologue.
    assert!(
        main_calls.iter().any(|c| c.ends_with("::fac")),
        "{main_calls:?}"
    );
    assert!(
        main_calls.iter().any(|c| c.ends_with("::even")),
        "{main_calls:?}"
    );
    assert!(
        direct_calls(&m.object, "even")
            .iter()
            .any(|c| c.ends_with("::odd"))
    );
    assert!(
        direct_calls(&m.object, "fac")
            .iter()
            .any(|c| c.ends_with("::fac"))
    );
}

#[test]
fn inlining_can_be_turned_off() {
    for o in [
        CompileOptions {
            inline: crate::Inlining::None,
            ..CompileOptions::default()
        },
        CompileOptions {
            opt_level: OptLevel::None,
            ..CompileOptions::default()
        },
    ] {
        let m = compile_wat(INLINING, &o).unwrap();
        let calls = direct_calls(&m.object, "twice");
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(m.info.funcs.iter().all(|f| f.inlined.is_empty()));
    }
}

#[test]
fn functions_with_loops_inline_only_calls_inside_them() {
    // `looping` takes `get` in its loop, not after it; `straight` has no loop.
    let wat = r#"
      (module
        (memory 1)
        (func $get (param i32) (result i32) (i32.load (local.get 0)))
        (func $looping (export "looping") (param i32) (result i32) (local $s i32)
          (loop $l
            (local.set $s (i32.add (local.get $s) (call $get (local.get 0))))
            (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
          (i32.add (local.get $s) (call $get (local.get 0))))
        (func $straight (export "straight") (param i32) (result i32)
          (call $get (local.get 0))))
    "#;
    let m = compile_wat(wat, &CompileOptions::default()).unwrap();
    assert_eq!(direct_calls(&m.object, "looping").len(), 1);
    assert!(direct_calls(&m.object, "straight").is_empty());
}

#[test]
fn large_callees_are_not_inlined() {
    // 60 additions: well over the callee size limit.
    let body = "(i32.add (local.get 0) (i32.const 3))";
    let mut big = String::from("(local.get 0)");
    for i in 0..60 {
        big = format!("(i32.xor (i32.mul {big} (i32.const {})) {body})", i + 3);
    }
    let wat = format!(
        r#"(module
             (func $big (param i32) (result i32) {big})
             (func $main (export "main") (param i32) (result i32) (local $s i32)
               (loop $l
                 (local.set $s (i32.add (local.get $s) (call $big (local.get 0))))
                 (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
               (local.get $s)))"#
    );
    let m = compile_wat(&wat, &CompileOptions::default()).unwrap();
    assert_eq!(direct_calls(&m.object, "main").len(), 1);
}

#[test]
fn throwing_callees_are_not_inlined_inside_try_table() {
    // `thrower` calls the `throw_ref` builtin (C convention): inlined at a plain call,
    // kept as a call inside a `try_table` (see `crate::inline`, exceptions).
    let wat = r#"
      (module
        (tag $e (param i32))
        (func $thrower (param i32) (throw $e (local.get 0)))
        (func $plain (export "plain") (param i32) (call $thrower (local.get 0)))
        (func $guarded (export "guarded") (param i32) (result i32)
          (block $h (result i32)
            (try_table (catch $e $h) (call $thrower (local.get 0)))
            (i32.const -1))))
    "#;
    let m = compile_wat(wat, &CompileOptions::default()).unwrap();
    assert!(direct_calls(&m.object, "plain").is_empty());
    assert_eq!(direct_calls(&m.object, "guarded").len(), 1);
}
