//! SPIFFE ID parsing: never panics; an accepted ID prints back to the same text and parses again
//! to an equal ID.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_tls::SpiffeId;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = text.parse::<SpiffeId>() {
        let printed = id.to_string();
        let again: SpiffeId = printed.parse().expect("a printed SPIFFE ID parses");
        assert_eq!(again, id);
        assert_eq!(again.to_string(), printed);
    }
});
