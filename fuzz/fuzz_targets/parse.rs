//! Fuzzes the SIF parser and everything a reader of an untrusted image calls
//! after it: listing, info, object reads, signature listing and verification.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vessel_sif::{display, list_signatures, verify_image, Image, SigningKey};

fuzz_target!(|data: &[u8]| {
    let Ok(img) = Image::from_source(data) else {
        return;
    };
    let _ = display::list_text(&img);
    let _ = display::header_text(img.header());
    for d in img.descriptors() {
        let _ = display::info_text(d);
        let _ = img.read_object(d.id, 1 << 20);
    }
    let _ = list_signatures(&img);
    let key = SigningKey::from_bytes(&[1; 32]).verifying_key();
    let _ = verify_image(&img, &[key]);
});
