//! Replays the committed fuzz seeds (`fuzz/corpus/<target>/`) through the
//! fuzz targets' own bodies (`fuzz/src/lib.rs`, included here), so that a
//! regression a seed once caught fails `cargo test` on stable, without
//! nightly or cargo-fuzz. `ci/fuzz.sh` does the fuzzing itself.
#![allow(clippy::unwrap_used)]

#[path = "../../fuzz/src/lib.rs"]
mod targets;

use std::path::Path;

#[test]
fn every_committed_seed_passes_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (name, target) in targets::TARGETS {
        let dir = corpus.join(name);
        let mut seeds: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("seed-")))
            .collect();
        seeds.sort();
        assert!(seeds.len() >= 5, "{name}: only {} seeds in {}", seeds.len(), dir.display());
        for seed in seeds {
            let data = std::fs::read(&seed).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: seed {} fails (replay: ci/fuzz.sh runs it too)", seed.display());
        }
    }
}

#[test]
fn the_targets_hold_on_inputs_no_seed_covers() {
    // Cheap sanity: empty input, one byte of each value.
    for (_, target) in targets::TARGETS {
        target(&[]);
        for byte in 0..=u8::MAX {
            target(&[byte]);
        }
    }
}
