//! Replays every seed under `fuzz/corpus/session/` through the `session`
//! fuzz target's logic (`fuzz/src/session.rs`, included with `#[path]`), so
//! the seeds are checked by plain `cargo test` too: no panic, nothing left in
//! flight, every forwarded message framed as the client sent it.

#[allow(dead_code)]
#[path = "../fuzz/src/session.rs"]
mod session;

use std::fs;
use std::path::PathBuf;

#[test]
fn session_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/session");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "corpus session is (nearly) empty");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = fs::read(&path).unwrap();
        let sum = session::run(&data);
        assert!(sum.events > 0, "{name}: no event decoded");
        match name.as_str() {
            "get-ok" | "stale-replay" | "parked-resumed" | "connect-pending" => {
                assert_eq!(
                    sum.responses,
                    1 + usize::from(name == "parked-resumed"),
                    "{name}: {sum:?}"
                );
            }
            "pipelined-post-get" => assert_eq!(sum.responses, 2, "{name}: {sum:?}"),
            _ => {}
        }
        if name == "interim-then-reply" {
            assert!(sum.responses >= 1, "{name}: {sum:?}");
        }
        if name == "parked-resumed" {
            assert!(sum.phases.contains(&"parked"), "{name}: {sum:?}");
        }
    }
}
