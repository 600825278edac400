//! Import checks for the seam between the pool and the modes (issue 12).
//!
//! Files under `src/mode/` may use of `src/pool/` only its surface for backends,
//! `crate::pool::backend` (the `Backend` trait, admission through `Gate`, `Stopping`, and
//! the `Shared` state a pool's workers see). Everything else in `pool/` (`Pool`'s fields,
//! `Lifecycle`-style per-mode state, retries, submission) is the pool's own, so a new mode
//! is added under `mode/` and in the options, and nowhere else.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of `text` without `//` comments (doc comments may name anything).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each use of `pool` in `text` other than through `crate::pool::backend`, with its line.
fn reaches_into_pool(text: &str) -> Vec<(usize, String)> {
    let mut bad = Vec::new();
    for (n, line) in code(text).lines().enumerate() {
        let squeezed: String = line.split_whitespace().collect();
        let mut from = 0;
        while let Some(at) = squeezed[from..].find("pool::") {
            let at = from + at;
            let before = &squeezed[..at];
            let after = &squeezed[at + "pool::".len()..];
            // `crate::pool::..`, `super::super::pool::..` or a bare `pool::..` path; not a
            // name that merely ends in `pool` (`limit::pool`, `thread_pool`).
            let is_pool_module = before.ends_with("crate::")
                || before.ends_with("super::")
                || !before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':');
            if is_pool_module && !after.starts_with("backend::") {
                bad.push((n + 1, line.trim().to_string()));
            }
            from = at + 1;
        }
    }
    bad
}

#[test]
fn modes_use_only_the_pools_backend_surface() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/mode");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(
        files.len() >= 5,
        "found the mode sources under {}",
        root.display()
    );
    let mut bad = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        for (line, code) in reaches_into_pool(&text) {
            bad.push(format!("{}:{line}: {code}", file.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "files under src/mode/ reach into pool/ beyond `crate::pool::backend`; move what \
         they need behind that module:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_what_it_must() {
    // What the modes did before the backend trait: named the pool's internals.
    assert_eq!(
        reaches_into_pool("use crate::pool::{Lifecycle, Shared, mark_worker_thread};").len(),
        1
    );
    assert_eq!(
        reaches_into_pool("let x = crate::pool::Pool::<W>::start(c, a);").len(),
        1
    );
    assert_eq!(
        reaches_into_pool("use super::super::pool::Shared;").len(),
        1
    );
    assert!(reaches_into_pool("use crate::pool::backend::{Backend, Shared};").is_empty());
    assert!(reaches_into_pool("use crate::limit::pool::LimitPool; // pool::Pool").is_empty());
    assert!(reaches_into_pool("let p = thread_pool::spawn();").is_empty());
}
