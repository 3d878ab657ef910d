//! Module validation at upload: only well-formed modules of a host ABI some node runs get into the store, each
//! classified by it ([`ModuleClass`]): WASI preview 1 commands (`_start`, for wasmtime on Linux agents) or MCU-ABI
//! modules (`edge` imports and `run`, for wasmi on microcontrollers, see `edge_proto::mcu`). Validation is
//! done here, centrally, so boards can run wasmi without its validator.

use edge_proto::mcu::{self, ModuleAbi, ValType};
use wasmparser::{Parser, Payload, TypeRef, Validator, WasmFeatures};

/// What a validated module is written for, recorded with it at upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleClass {
    pub abi: ModuleAbi,
    /// For an MCU-ABI module, the RAM one instance needs on a node (`edge_proto::mcu::memory_need`); 0 for WASI.
    pub mcu_memory_bytes: u64,
}

/// The class of every WASI module.
pub const WASI: ModuleClass = ModuleClass { abi: ModuleAbi::Wasi, mcu_memory_bytes: 0 };

/// Why a module was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModuleError {
    #[error("empty upload")]
    Empty,
    #[error("not a WebAssembly module: {0}")]
    NotWasm(String),
    #[error("WebAssembly components are not supported yet: upload a core module (wasm32-wasip1)")]
    Component,
    #[error("module imports what the runtime does not provide: {}", .0.join(", "))]
    UnknownImports(Vec<String>),
    #[error(
        "module has no `_start` function (a WASI command) nor `run` with only `edge` imports (the MCU ABI): \
         nothing can run it"
    )]
    NoStart,
    #[error("MCU-ABI module: {0}")]
    Mcu(String),
}

/// Validates `bytes` as a core WebAssembly module that is either a WASI preview 1 command (imports only WASI
/// preview 1, exports `_start`) or an MCU-ABI module (imports only the `edge` functions with their signatures,
/// defines and exports its memory, exports `run: () -> ()`, at most `edge_proto::mcu::MAX_MODULE` bytes).
pub fn validate_module(bytes: &[u8]) -> Result<ModuleClass, ModuleError> {
    if bytes.is_empty() {
        return Err(ModuleError::Empty);
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(ModuleError::NotWasm("missing the \\0asm magic header".into()));
    }
    if wasmparser::Parser::is_component(bytes) {
        return Err(ModuleError::Component);
    }
    Validator::new_with_features(WasmFeatures::default())
        .validate_all(bytes)
        .map_err(|e| ModuleError::NotWasm(e.message().to_string()))?;
    let bad = |e: wasmparser::BinaryReaderError| ModuleError::NotWasm(e.message().to_string());
    let mut shape = Shape::default();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(bad)? {
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    let ty = ty.map_err(bad)?;
                    let kind = |t: &wasmparser::ValType| match t {
                        wasmparser::ValType::I32 => Some(ValType::I32),
                        wasmparser::ValType::I64 => Some(ValType::I64),
                        _ => None,
                    };
                    let params: Option<Vec<ValType>> = ty.params().iter().map(kind).collect();
                    let results: Option<Vec<ValType>> = ty.results().iter().map(kind).collect();
                    shape.types.push(params.zip(results));
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(bad)?;
                    let func = match import.ty {
                        TypeRef::Func(t) | TypeRef::FuncExact(t) => Some(t),
                        _ => None,
                    };
                    shape.imports.push((import.module.to_string(), import.name.to_string(), func));
                }
            }
            Payload::FunctionSection(reader) => {
                for f in reader {
                    shape.funcs.push(f.map_err(bad)?);
                }
            }
            Payload::MemorySection(reader) => {
                for m in reader {
                    let m = m.map_err(bad)?;
                    shape.memory_pages = Some(m.maximum.unwrap_or(m.initial));
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(bad)?;
                    shape.exports.push((export.name.to_string(), export.kind, export.index));
                }
            }
            _ => {}
        }
    }
    shape.classify(bytes.len() as u64)
}

/// What classification needs of a module, gathered in one walk.
#[derive(Default)]
struct Shape {
    /// Function types by index: (params, results) when every value is an i32 or i64.
    types: Vec<Option<(Vec<ValType>, Vec<ValType>)>>,
    /// (module, name, function type index) of each import; `None`: not a function.
    imports: Vec<(String, String, Option<u32>)>,
    /// Type index of each defined function.
    funcs: Vec<u32>,
    /// The defined memory's maximum (else initial) pages.
    memory_pages: Option<u64>,
    exports: Vec<(String, wasmparser::ExternalKind, u32)>,
}

impl Shape {
    fn exports_func(&self, name: &str) -> Option<u32> {
        self.exports.iter().find(|(n, k, _)| n == name && *k == wasmparser::ExternalKind::Func).map(|e| e.2)
    }

    fn classify(&self, size: u64) -> Result<ModuleClass, ModuleError> {
        let wasi = WASI;
        let all_wasi = self.imports.iter().all(|(m, n, f)| f.is_some() && edge_engine::wasi::provides(m, n));
        let mcu_imports = self.imports.iter().all(|(m, _, _)| m == mcu::IMPORT_MODULE);
        if self.exports_func("_start").is_some() && (all_wasi || !mcu_imports) {
            let unknown: Vec<String> = self
                .imports
                .iter()
                .filter(|(m, n, f)| f.is_none() || !edge_engine::wasi::provides(m, n))
                .map(|(m, n, _)| format!("{m}::{n}"))
                .collect();
            return if unknown.is_empty() { Ok(wasi) } else { Err(ModuleError::UnknownImports(unknown)) };
        }
        let Some(run) = self.exports_func(mcu::ENTRY) else {
            if !all_wasi && !mcu_imports {
                let unknown = self.imports.iter().filter(|(m, n, f)| f.is_none() || !edge_engine::wasi::provides(m, n));
                return Err(ModuleError::UnknownImports(unknown.map(|(m, n, _)| format!("{m}::{n}")).collect()));
            }
            return Err(ModuleError::NoStart);
        };
        if !mcu_imports {
            let foreign = self.imports.iter().filter(|(m, _, _)| m != mcu::IMPORT_MODULE);
            return Err(ModuleError::UnknownImports(foreign.map(|(m, n, _)| format!("{m}::{n}")).collect()));
        }
        let mcu = |why: String| ModuleError::Mcu(why);
        if size > mcu::MAX_MODULE {
            return Err(mcu(format!("{size} bytes, over the limit of {} for microcontrollers", mcu::MAX_MODULE)));
        }
        let sig = |t: u32| self.types.get(t as usize).cloned().flatten();
        for (_, name, ty) in &self.imports {
            let Some(host) = mcu::host_fn(name) else {
                return Err(ModuleError::UnknownImports(vec![format!("{}::{name}", mcu::IMPORT_MODULE)]));
            };
            let wanted = Some((host.params.to_vec(), host.results.to_vec()));
            if ty.and_then(sig) != wanted {
                return Err(mcu(format!("import {}::{name} has the wrong signature", mcu::IMPORT_MODULE)));
            }
        }
        // `run` is a defined function (an import cannot be exported as the entry of this ABI).
        let imported = self.imports.len() as u32;
        let run_type = run.checked_sub(imported).and_then(|i| self.funcs.get(i as usize)).and_then(|t| sig(*t));
        if run_type != Some((vec![], vec![])) {
            return Err(mcu(format!("`{}` must be a function of no parameters and no results", mcu::ENTRY)));
        }
        let exports_memory =
            self.exports.iter().any(|(n, k, _)| n == mcu::MEMORY_EXPORT && *k == wasmparser::ExternalKind::Memory);
        let (Some(pages), true) = (self.memory_pages, exports_memory) else {
            return Err(mcu(format!("it must define its memory and export it as `{}`", mcu::MEMORY_EXPORT)));
        };
        Ok(ModuleClass { abi: ModuleAbi::Mcu, mcu_memory_bytes: mcu::memory_need(pages, size) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMAND: &str = r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
        (func (export "_start")))"#;

    fn wasm(text: &str) -> Vec<u8> {
        wat::parse_str(text).unwrap()
    }

    #[test]
    fn accepts_a_wasi_command() {
        assert_eq!(validate_module(&wasm(COMMAND)).map(|c| c.abi), Ok(ModuleAbi::Wasi));
    }

    #[test]
    fn refuses_garbage_truncation_and_foreign_imports() {
        assert_eq!(validate_module(b""), Err(ModuleError::Empty));
        assert!(matches!(validate_module(b"hello world!"), Err(ModuleError::NotWasm(_))));
        let good = wasm(COMMAND);
        assert!(matches!(validate_module(&good[..good.len() - 3]), Err(ModuleError::NotWasm(_))));
        let foreign = wasm(&COMMAND.replace("preview1", "preview2"));
        assert_eq!(
            validate_module(&foreign),
            Err(ModuleError::UnknownImports(vec!["wasi_snapshot_preview2::proc_exit".into()]))
        );
        // WASI imports without `_start`: nothing would call the module, and that is what the error says.
        assert_eq!(validate_module(&wasm(&COMMAND.replace("_start", "main"))), Err(ModuleError::NoStart));
        assert_eq!(validate_module(&wasm("(module (func (export \"main\")))")), Err(ModuleError::NoStart));
        // A function WASI preview 1 does not have is named, with every other missing import.
        let invented = wasm(
            r#"(module
                (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
                (import "wasi_snapshot_preview1" "gpio_write" (func (param i32)))
                (import "env" "memory" (memory 1))
                (func (export "_start")))"#,
        );
        assert_eq!(
            validate_module(&invented),
            Err(ModuleError::UnknownImports(vec!["wasi_snapshot_preview1::gpio_write".into(), "env::memory".into()]))
        );
    }

    const MCU: &str = r#"(module
        (import "edge" "log" (func (param i32 i32)))
        (import "edge" "sleep_ms" (func (param i32)))
        (memory (export "memory") 1 2)
        (func (export "run")))"#;

    #[test]
    fn classifies_an_mcu_module_with_what_it_needs() {
        let bytes = wasm(MCU);
        let class = validate_module(&bytes).unwrap();
        assert_eq!(class.abi, ModuleAbi::Mcu);
        assert_eq!(class.mcu_memory_bytes, mcu::memory_need(2, bytes.len() as u64));
    }

    #[test]
    fn refuses_modules_of_neither_abi_saying_why() {
        let check = |text: &str| validate_module(&wasm(text)).unwrap_err().to_string();
        // Wrong signature, unknown host function, foreign import beside edge ones.
        let e = check(&MCU.replace("(param i32)))\n", "(param i64)))\n"));
        assert!(e.contains("edge::sleep_ms has the wrong signature"), "{e}");
        let e = check(&MCU.replace("\"sleep_ms\"", "\"gpio\""));
        assert!(e.contains("edge::gpio"), "{e}");
        let e = check(&MCU.replace("\"edge\" \"log\"", "\"env\" \"log\""));
        assert!(e.contains("env::log"), "{e}");
        // No exported memory, an entry with parameters.
        let e = check(&MCU.replace("(export \"memory\") ", ""));
        assert!(e.contains("export it as `memory`"), "{e}");
        let e = check(&MCU.replace("(func (export \"run\"))", "(func (export \"run\") (param i32))"));
        assert!(e.contains("no parameters"), "{e}");
        // A WASI import in a module with `run`: neither ABI.
        let e = check(&MCU.replace("\"edge\" \"log\"", "\"wasi_snapshot_preview1\" \"fd_write\""));
        assert!(e.contains("wasi_snapshot_preview1::fd_write"), "{e}");
    }
}
