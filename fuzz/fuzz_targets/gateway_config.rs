//! The gateway's TOML configuration: any text gives a configuration or a typed error naming the
//! problem, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let base = std::env::temp_dir();
        if let Err(error) = mesh_examples::gateway_config::parse(text, &base) {
            assert!(!error.to_string().is_empty());
        }
    }
});
