//! WebSocket frames from a client: never panic, and the items decoded do
//! not depend on how the bytes were split into reads. The first byte picks
//! the split point and whether permessage-deflate was agreed.
#![no_main]

use eio_core::protocol::ws::deflate::{Agreed, Inflater};
use eio_core::protocol::ws::frame::Decoder;
use libfuzzer_sys::fuzz_target;

fn decoder(deflate: bool) -> Decoder {
    Decoder::new(64 * 1024, deflate.then(|| Inflater::new(&Agreed::default())))
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let deflate = first & 1 == 1;
    let mut whole = Vec::new();
    let whole_result = decoder(deflate).feed(data, &mut whole);

    let split = (first as usize >> 1).min(data.len());
    let mut d = decoder(deflate);
    let mut parts = Vec::new();
    let mut result = d.feed(&data[..split], &mut parts);
    if result.is_ok() {
        result = d.feed(&data[split..], &mut parts);
    }
    assert_eq!(parts, whole);
    assert_eq!(result, whole_result);
});
