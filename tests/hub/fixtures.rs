//! Reading golden fixtures: the helpers every `golden*` module shares.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// `adapters/<system>/fixtures`.
pub fn fixtures_dir(system: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters").join(system).join("fixtures")
}

/// The cases of a system whose input file ends with `suffix`, sorted: (case, input path).
pub fn cases(system: &str, suffix: &str) -> Vec<(String, PathBuf)> {
    let dir = fixtures_dir(system);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list the fixtures folder {}: {e}", dir.display()));
    let mut found: Vec<(String, PathBuf)> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter_map(|p| {
            let case = p.file_name()?.to_str()?.strip_suffix(suffix)?.to_string();
            Some((case, p))
        })
        .collect();
    found.sort();
    found
}

/// Every `<case>.native.json` of `system` (at least `min` of them) maps, through `map(case,
/// text)`, to its `<case>.canonical.json`.
pub fn check_native_fixtures(system: &str, min: usize, map: impl Fn(&str, &str) -> Result<Value, String>) {
    let natives = cases(system, ".native.json");
    assert!(natives.len() >= min, "expected at least {min} *.native.json fixtures in {}, found {}", fixtures_dir(system).display(), natives.len());
    let mut failures = Vec::new();
    for (case, path) in &natives {
        let expected = read_json(&sibling(path, case, ".canonical.json"));
        match map(case, &read_text(path)) {
            Ok(actual) => failures.extend(mismatch(case, "canonical document", &expected, &actual)),
            Err(e) => failures.push(format!("{case}: mapping failed: {e}")),
        }
    }
    assert!(failures.is_empty(), "{} of {} native fixtures differ:\n\n{}", failures.len(), natives.len(), failures.join("\n\n"));
}

/// Every `<case>.canonical-in.json` of `system` (at least `min`) is a valid canonical incident
/// and maps, through `map(case, text)`, to its `<case>.native-out.json`.
pub fn check_reverse_fixtures(system: &str, min: usize, map: impl Fn(&str, &str) -> Result<Value, String>) {
    let inputs = cases(system, ".canonical-in.json");
    assert!(inputs.len() >= min, "expected at least {min} *.canonical-in.json fixtures in {}, found {}", fixtures_dir(system).display(), inputs.len());
    let mut failures = Vec::new();
    for (case, path) in &inputs {
        let doc = read_json(path);
        if let Err(violations) = siam_hub::validation::validate(siam_hub::validation::Doc::Incident, &doc) {
            failures.push(format!("{case}: the canonical input is not a valid incident: {violations:?}"));
            continue;
        }
        let expected = read_json(&sibling(path, case, ".native-out.json"));
        match map(case, &read_text(path)) {
            Ok(actual) => failures.extend(mismatch(case, "native body", &expected, &actual)),
            Err(e) => failures.push(format!("{case}: reverse mapping failed: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `siam-hub map` with `args`. The command needs no configuration; the caller's log filter and
/// configuration are kept out of it.
pub fn run_map(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siam-hub")).arg("map").args(args).env_remove("RUST_LOG").env_remove("SIAM_CONFIG").output().expect("the siam-hub binary runs")
}

/// The binary both ways over a system's fixtures: what `run(case, [FILE])` prints for every
/// `<case>.native.json` against `<case>.canonical.json`, and what `run(case, ["--reverse",
/// FILE])` prints for every `<case>.canonical-in.json` against `<case>.native-out.json`. The
/// differences; empty when every case agrees.
pub fn binary_fixture_failures(system: &str, run: impl Fn(&str, &[&str]) -> Output) -> Vec<String> {
    let mut failures = Vec::new();
    for (input, expected, reverse) in [(".native.json", ".canonical.json", false), (".canonical-in.json", ".native-out.json", true)] {
        for (case, path) in cases(system, input) {
            let file = path.to_str().expect("UTF-8 fixture path");
            let out = if reverse { run(&case, &["--reverse", file]) } else { run(&case, &[file]) };
            if !out.status.success() {
                failures.push(format!("{case}: exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr)));
                continue;
            }
            let what = if reverse { "`siam-hub map --reverse` output" } else { "`siam-hub map` output" };
            match serde_json::from_slice::<Value>(&out.stdout) {
                Ok(actual) => failures.extend(mismatch(&case, what, &read_json(&sibling(&path, &case, expected)), &actual)),
                Err(e) => failures.push(format!("{case}: stdout is not JSON: {e}")),
            }
        }
    }
    failures
}
