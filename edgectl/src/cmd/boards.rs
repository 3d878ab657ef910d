//! `edgectl boards [-o json|yaml]`: the board profiles this build knows (crate `edge-boards`), one row each:
//! NAME ARCH TARGET ENGINE CORES MEMORY RESERVED PROVISION, then what the board is. No controller is asked.

use anyhow::Result;

use crate::cli::Output;
use crate::table::Table;

pub fn run(output: Output) -> Result<()> {
    // The Linux boards first (what `flash` and `--board` take), then the microcontrollers; by name within each.
    let mut boards = edge_boards::all().to_vec();
    boards.sort_by_key(|b| (b.runtime == edge_boards::Runtime::Firmware, b.name));
    let text = match output {
        Output::Table => table(&boards),
        Output::Json => serde_json::to_string_pretty(&boards)? + "\n",
        Output::Yaml => crate::manifest::render::json(&serde_json::to_value(&boards)?),
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    Ok(())
}

fn table(boards: &[edge_boards::Board]) -> String {
    let mut t =
        Table::new(["NAME", "ARCH", "TARGET", "ENGINE", "CORES", "MEMORY", "RESERVED", "PROVISION", "DESCRIPTION"]);
    for b in boards {
        let engine = match (b.runtime, b.engine) {
            (edge_boards::Runtime::Firmware, _) => "firmware".to_string(),
            (_, e) if e.starts_with("pulley") => format!("{e} (Pulley)"),
            (_, e) => format!("{e} (Cranelift)"),
        };
        let reserved = match (b.reserved_cpu_millis, b.reserved_memory_bytes) {
            (0, 0) => "-".to_string(),
            (cpu, mem) => format!("{cpu}m/{}", edge_proto::quantity::format_memory(mem)),
        };
        let provision: Vec<&str> = b.provision.iter().map(|p| p.as_str()).collect();
        t.row([
            b.name.to_string(),
            b.arch.to_string(),
            b.target_triple.to_string(),
            engine,
            b.cores.to_string(),
            edge_proto::quantity::format_memory(b.memory_bytes),
            reserved,
            provision.join(","),
            b.description.to_string(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_board_has_a_row_naming_its_engine() {
        let boards = edge_boards::all();
        let text = super::table(boards);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), boards.len() + 1, "{text}");
        assert!(lines[0].starts_with("NAME") && lines[0].contains("PROVISION"), "{text}");
        let row = |name: &str| lines.iter().find(|l| l.starts_with(&format!("{name} "))).copied().unwrap_or("");
        assert!(row("rpi-4").contains("aarch64 (Cranelift)") && row("rpi-4").contains("image,ssh"), "{text}");
        assert!(row("rpi-zero-w").contains("pulley32 (Pulley)") && row("rpi-zero-w").contains("armv6"), "{text}");
        assert!(row("esp32-c3").contains("firmware") && row("esp32-c3").contains("400Ki"), "{text}");
    }

    #[test]
    fn json_carries_every_field() {
        let v = serde_json::to_value(edge_boards::all()).unwrap();
        let pi = v.as_array().unwrap().iter().find(|b| b["name"] == "rpi-4").unwrap();
        assert_eq!(pi["target_triple"], "aarch64-unknown-linux-gnu");
        assert_eq!(pi["runtime"], "agent");
        assert_eq!(pi["memory_bytes"], 4u64 << 30);
        assert_eq!(pi["provision"], serde_json::json!(["image", "ssh"]));
    }
}
