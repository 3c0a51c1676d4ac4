//! The client-frame decoder (`confab::ws::frame::Decoder`) on arbitrary bytes, fed whole and
//! in chunks. It must never panic; a message it yields is within the size limit (text: UTF-8);
//! a refusal carries one of the close codes RFC 6455 asks for; and how the bytes are split
//! across reads changes nothing.
#![no_main]

use bytes::BytesMut;
use confab::ws::frame::{Decoder, Incoming, Violation};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64 * 1024;

/// Everything the decoder makes of `input` when it arrives in chunks of `chunk` bytes.
fn decode(input: &[u8], chunk: usize) -> (Vec<Incoming>, Option<Violation>) {
    let mut decoder = Decoder::new(MAX);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(message)) => out.push(message),
                Ok(None) => break,
                Err(violation) => return (out, Some(violation)),
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let (whole, whole_end) = decode(input, input.len());
    let (chunked, chunked_end) = decode(input, usize::from(split % 16) + 1);
    assert_eq!(whole, chunked, "the split across reads changed the messages");
    assert_eq!(whole_end, chunked_end, "the split across reads changed the verdict");
    for message in &whole {
        if let Incoming::Text(text) = message {
            assert!(text.len() <= MAX);
        }
    }
    if let Some(violation) = whole_end {
        assert!([1002, 1007, 1009].contains(&violation.code), "{violation:?}");
    }
});
