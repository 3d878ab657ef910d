//! Prints an increasing counter every second, forever.
use std::io::Write;

fn main() {
    let mut n: u64 = 0;
    loop {
        n += 1;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "tick {}", n);
        let _ = out.flush();
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
