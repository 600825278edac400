//! The limit layer knows no mode: no file under `src/limit/` names `mode::` (a transport
//! implements `limit::hosted`'s link; the limit layer never reaches into one).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines of `text` that name `needle` (comments included: a doc link is an import too).
fn offending(text: &str, needle: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.contains(needle))
        .map(|(i, line)| format!("{}: {}", i + 1, line.trim()))
        .collect()
}

#[test]
fn no_file_under_limit_names_mode() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/limit");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(
        files.len() > 5,
        "found only {files:?} under {}",
        root.display()
    );
    let mut bad = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for line in offending(&text, "mode::") {
            bad.push(format!("{}:{line}", file.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "src/limit/ must not name `mode::` (put the transport's side in mode/, behind \
         limit::hosted::LimitLink):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_an_import() {
    let text = "use crate::limit::LimitSet;\nuse crate::mode::process::limits::RemoteLimits;\n";
    assert_eq!(
        offending(text, "mode::"),
        ["2: use crate::mode::process::limits::RemoteLimits;"]
    );
    assert!(offending("use crate::Mode::Process;", "mode::").is_empty());
}
