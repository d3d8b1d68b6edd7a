//! Reading golden fixtures: the helpers every `golden*` module shares.

use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&read_text(path)).unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// `None` when equal, else a report with both documents in full.
pub fn mismatch(case: &str, what: &str, expected: &Value, actual: &Value) -> Option<String> {
    (expected != actual).then(|| format!("{case}: {what} differs\n--- expected ---\n{}\n--- actual ---\n{}", pretty(expected), pretty(actual)))
}

/// The file of the same case with another suffix (`x.native.json` -> `x.canonical.json`).
pub fn sibling(input: &Path, case: &str, suffix: &str) -> PathBuf {
    input.with_file_name(format!("{case}{suffix}"))
}
