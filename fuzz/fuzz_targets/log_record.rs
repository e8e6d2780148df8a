//! The log's frame and record decoder on arbitrary bytes (what a damaged disk can hand back):
//! an error, never a panic; a record that opens re-seals to the same frame (its fields in
//! encoding order, as in the seeds: a frame whose manifest was sealed from its encoding has
//! that field last, and nothing re-seals records read back).
#![no_main]

use aci_gateway::store::record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A payload on its own (past the CRC, as a CRC collision would hand it over).
    let _ = record::open(data);
    let mut rest = data;
    while let Ok((payload, used)) = record::read_frame(rest) {
        if let Ok(mut opened) = record::open(payload) {
            let prev = opened.prev_hash.clone().try_into().unwrap_or([0u8; 32]);
            if opened.prev_hash.len() == 32 {
                let (frame, _) = record::seal(&mut opened, None, prev);
                assert_eq!(frame, rest[..used], "an opened record re-seals to its frame");
            }
        }
        rest = &rest[used..];
    }
});
