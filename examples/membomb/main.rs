//! Allocates 1 MiB chunks forever, touching every page: a memory-limit test subject.
fn main() {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        for i in (0..chunk.len()).step_by(4096) {
            chunk[i] = 1;
        }
        chunks.push(chunk);
        println!("allocated {} MiB", chunks.len());
    }
}
