//! Import checks for the remote layer (issue 12): `src/remote/` knows no transport, so it
//! names nothing in `src/mode/`; the pool reaches remote workers through `remote/`, never
//! through a transport's supervisor.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
    out
}

/// The lines of `text` (comments aside) that name one of `forbidden`, as `line: text`.
fn offending(text: &str, forbidden: &[&str]) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .filter(|(_, l)| forbidden.iter().any(|f| l.contains(f)))
        .map(|(n, l)| format!("{}: {}", n + 1, l.trim()))
        .collect()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_scanner_sees_a_path_into_mode_and_skips_comments() {
    let text = "//! `mode::process` in a comment\nuse crate::mode::process::Conn;\n";
    assert_eq!(
        offending(text, &["mode::"]),
        ["2: use crate::mode::process::Conn;"]
    );
    assert!(offending("use super::super::x;", &["super::super::"]).len() == 1);
}

#[test]
fn remote_names_nothing_in_mode() {
    let dir = src().join("remote");
    let files = sources(&dir);
    assert!(
        files.len() >= 5,
        "expected the remote layer in {}",
        dir.display()
    );
    let mut bad = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // `super::super` would climb out of `remote/` into the crate root's modules.
        for line in offending(&text, &["mode::", "super::super::", "ProcessConfig"]) {
            bad.push(format!("{}:{line}", file.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "src/remote/ must not name process mode (or any mode); found:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_pool_does_not_reach_into_a_supervisor() {
    let file = src().join("pool").join("remote.rs");
    let text = std::fs::read_to_string(&file).unwrap();
    let bad = offending(
        &text,
        &["supervisor::", "process::child", "process::parent"],
    );
    assert!(
        bad.is_empty(),
        "{} goes around `remote/`:\n{}",
        file.display(),
        bad.join("\n")
    );
}
