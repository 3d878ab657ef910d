//! Module validation at upload: only well-formed WASI preview 1 command modules get into the store.

use wasmparser::{Parser, Payload, TypeRef, Validator, WasmFeatures};

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
    #[error("module has no `_start` function: only WASI command modules can run")]
    NoStart,
}

/// Validates `bytes` as a core WebAssembly module that imports only WASI preview 1 and exports `_start`.
pub fn validate_module(bytes: &[u8]) -> Result<(), ModuleError> {
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
    let mut unknown = Vec::new();
    let mut has_start = false;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| ModuleError::NotWasm(e.message().to_string()))? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| ModuleError::NotWasm(e.message().to_string()))?;
                    let func = matches!(import.ty, TypeRef::Func(_) | TypeRef::FuncExact(_));
                    if !func || !edge_engine::wasi::provides(import.module, import.name) {
                        unknown.push(format!("{}::{}", import.module, import.name));
                    }
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(|e| ModuleError::NotWasm(e.message().to_string()))?;
                    has_start |= export.name == "_start" && export.kind == wasmparser::ExternalKind::Func;
                }
            }
            _ => {}
        }
    }
    if !unknown.is_empty() {
        return Err(ModuleError::UnknownImports(unknown));
    }
    if !has_start {
        return Err(ModuleError::NoStart);
    }
    Ok(())
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
        assert_eq!(validate_module(&wasm(COMMAND)), Ok(()));
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
        assert_eq!(validate_module(&wasm(&COMMAND.replace("_start", "main"))), Err(ModuleError::NoStart));
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
}
