//! `mcu-wat IN.wat OUT.wasm`: compiles an MCU-ABI example from its WebAssembly text (examples/build.sh).

use anyhow::{Context, Result};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: mcu-wat IN.wat OUT.wasm");
    };
    let wasm = wat::parse_file(&input).with_context(|| format!("cannot compile {input}"))?;
    std::fs::write(&output, wasm).with_context(|| format!("cannot write {output}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_example_is_its_source_compiled() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let compiled = wat::parse_file(root.join("mcu-blink/blink.wat")).unwrap();
        let committed = std::fs::read(root.join("mcu-blink.wasm")).unwrap();
        assert!(compiled == committed, "examples/mcu-blink.wasm is stale: run examples/build.sh");
    }
}
