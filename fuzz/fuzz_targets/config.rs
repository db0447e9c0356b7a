//! libFuzzer entry point; the body is `broker_fuzz::config` (shared with the
//! corpus replay in broker/tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| broker_fuzz::config(data));
