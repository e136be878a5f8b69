//! DNS replies (untrusted: whatever answers on the VIP): no input makes the parser panic
//! or loop, and a reply that parses keeps within its bounds (a name's text is made of at
//! most 255 wire bytes, at most MAX_ANSWERS records are kept).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vipcheck::wire::dns::{self, ResponseRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = ResponseRepr::parse(data) {
        assert!(r.answers.len() <= dns::MAX_ANSWERS);
        for a in &r.answers {
            // Every byte of a label comes out as at most 4 characters (`\DDD`).
            assert!(a.name.len() <= 4 * dns::MAX_NAME_LEN);
            let _ = dns::data_matches(a, "192.0.2.53");
        }
    }
    let _ = dns::read_name(data, 0);
});
