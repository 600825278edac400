//! The docs agree with the code: every option of the generated `options()` builders is named
//! where README.md and the macro docs list them.

use std::path::Path;

fn read(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The methods of `__options_builder_methods!`, which every generated builder has.
fn builder_options() -> Vec<String> {
    let src = read("concurry-runtime/src/options_builder.rs");
    let body = src
        .split_once("macro_rules! __options_builder_methods")
        .expect("the builder macro")
        .1;
    let options: Vec<String> = body
        .split("pub fn ")
        .skip(1)
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    assert!(options.len() >= 10, "{options:?}");
    options
}

/// The text of `doc` from `start` up to the next `end`.
fn between<'a>(doc: &'a str, start: &str, end: &str) -> &'a str {
    let from = doc
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not found"));
    let rest = &doc[from..];
    &rest[..rest
        .find(end)
        .unwrap_or_else(|| panic!("{end:?} not found"))]
}

#[test]
fn option_lists_name_every_builder_option() {
    let readme = read("README.md");
    let macros = read("concurry-macros/src/lib.rs");
    let lists = [
        (
            "README.md",
            between(&readme, "a builder, `LlmOptions`", "then `init"),
        ),
        (
            "#[worker] docs",
            between(&macros, "a builder (`mode`", "finished by"),
        ),
        (
            "#[task] docs",
            between(&macros, "`#[task(..)]` takes the options", "Limits apply"),
        ),
    ];
    for option in builder_options() {
        for (place, list) in lists {
            assert!(
                list.contains(&format!("`{option}`")),
                "{place} does not name the option `{option}`: {list}"
            );
        }
    }
}
