//! Prints a greeting built from the environment variable NAME, then exits 0.
fn main() {
    let name = std::env::var("NAME").unwrap_or_else(|_| "world".to_string());
    println!("Hello, {}!", name);
}
