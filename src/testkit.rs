//! Test support shared by the property tests of every payload reader: arbitrary JSON, odd
//! strings, payloads grown from the golden fixtures by mutation, and canonical incidents.
//!
//! The readers take untrusted payloads from suppliers and clients; their contract is an error or
//! an empty result for garbage, never a panic. Arbitrary JSON is mostly refused at the top, so the
//! fixture mutations (a key dropped, a value of another type, a huge or odd string, deeper
//! nesting) keep a payload recognisable and push the readers deep into it.
//!
//! Each property runs a fixed number of cases inside `cargo test`; `PROPTEST_CASES` raises it
//! for a longer soak. Failing inputs are kept next to the test source in a
//! `*.proptest-regressions` file and replayed first on every run.

use crate::domain::*;
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Number, Value};
use std::path::Path;

/// The run configuration of a property: `cases` unless `PROPTEST_CASES` says otherwise.
pub fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        // Payloads can be large: keep a failure's shrinking bounded in time.
        max_shrink_iters: 4096,
        // The bounded run in CI explores the same cases every time, so it never fails by
        // chance; a soak run (`PROPTEST_CASES` set) explores new ones.
        rng_seed: if std::env::var_os("PROPTEST_CASES").is_some() { proptest::test_runner::RngSeed::Random } else { proptest::test_runner::RngSeed::Fixed(0x5_1A_4B) },
        ..ProptestConfig::default()
    }
}

/// Nesting of generated or mutated JSON stays below serde_json's parse limit (128), since every
/// payload a reader meets was parsed from text first.
const MAX_DEPTH: usize = 96;

/// Strings that upset readers: empty, blank, control characters, non-BMP text, markup, huge.
pub fn odd_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "(?s).{0,48}",
        2 => Just(String::new()),
        1 => prop::sample::select(vec![" ", "\t\n", "\u{0}", "\u{feff}", "\r\n\r\n", "🚀👩‍👩‍👧", "ü", "e\u{301}", "\u{202e}abc", "null", "true", "-", "%", "%zz%2", "|", "\\"]).prop_map(str::to_string),
        2 => "[*_+^~?{}\\[\\]|!#h1. \\\\\n-]{0,40}",
        2 => date_like(),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec![
            "x".repeat(40_000),
            "é".repeat(20_001),
            "line\n".repeat(5_000),
            " ".repeat(1_000),
            "9".repeat(400),
            "*a* _b_ [c|d] {code}".repeat(100),
        ]),
    ]
    .boxed()
}

/// Date and time shapes the suppliers use, with out-of-range and zone-less variants.
pub fn date_like() -> BoxedStrategy<String> {
    prop_oneof![
        "[+-]?[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}([T ][0-9]{1,2}:[0-9]{1,2}(:[0-9]{1,2}(\\.[0-9]{0,10})?)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?",
        "[0-9]{4}-[0-9]{2}",
        "(Mon|Sun|Xyz), [0-9]{1,2} (Jan|Feb|Oct|Foo) [0-9]{1,6} [0-9]{2}:[0-9]{2}:[0-9]{2} (GMT|[+-][0-9]{4})",
        any::<i64>().prop_map(|n| n.to_string()),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        prop::sample::select(vec![0i64, -1, 1, 2, 3, 4, 5, 1000, i64::MIN, i64::MAX]).prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(1e308)),
        Just(Value::from(-0.5)),
    ]
    .boxed()
}

fn leaf(strings: Vec<String>) -> BoxedStrategy<Value> {
    let known = if strings.is_empty() { Just(Value::Null).boxed() } else { prop::sample::select(strings).prop_map(Value::String).boxed() };
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => number(),
        3 => odd_text().prop_map(Value::String),
        3 => known,
    ]
    .boxed()
}

fn key(keys: Vec<String>) -> BoxedStrategy<String> {
    if keys.is_empty() {
        return "(?s).{0,12}".boxed();
    }
    prop_oneof![4 => prop::sample::select(keys), 1 => "(?s).{0,12}"].boxed()
}

/// Arbitrary JSON whose object keys are mostly `keys` and whose strings are often `strings`
/// (the names and values a reader looks for), of bounded depth and size.
pub fn json_in(keys: Vec<String>, strings: Vec<String>) -> BoxedStrategy<Value> {
    let k = key(keys);
    leaf(strings)
        .prop_recursive(6, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((k.clone(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

/// Arbitrary JSON with no knowledge of any reader.
pub fn json() -> BoxedStrategy<Value> {
    json_in(vec![], vec![])
}

/// The JSON files under `adapters/<dir>` (relative to the crate) whose names end in `suffix`.
pub fn fixtures(dir: &str, suffix: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters").join(dir);
    let mut names: Vec<_> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(suffix)))
        .collect();
    names.sort();
    let docs: Vec<Value> = names
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    assert!(!docs.is_empty(), "no *{suffix} fixtures in {}", path.display());
    docs
}

/// Every object key and every string value in `docs`, each once.
pub fn vocabulary_of(docs: &[Value]) -> (Vec<String>, Vec<String>) {
    fn walk(v: &Value, keys: &mut Vec<String>, strings: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    keys.push(k.clone());
                    walk(v, keys, strings);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, keys, strings)),
            Value::String(s) => strings.push(s.clone()),
            _ => {}
        }
    }
    let (mut keys, mut strings) = (vec![], vec![]);
    docs.iter().for_each(|d| walk(d, &mut keys, &mut strings));
    for list in [&mut keys, &mut strings] {
        list.sort();
        list.dedup();
    }
    (keys, strings)
}

/// One change to a document, at a node chosen by `at` among all of its nodes.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// The node leaves its parent (a key dropped, an element removed).
    Drop(Index),
    /// The node becomes another value (often of another type).
    Replace(Index, Value),
    /// The node is wrapped `depth` times in arrays or `{key: ...}` objects.
    Nest(Index, String, u8),
    /// An object node gains (or changes) a key.
    Insert(Index, String, Value),
    /// An array node has its elements repeated.
    Repeat(Index, u8),
    /// A scalar (chosen among the scalars only, so the values readers look at are hit often)
    /// becomes another value: blank, of another type, odd or huge text, an edge number.
    Scalar(Index, Value),
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    At(usize),
}

fn paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                here.push(Step::Key(k.clone()));
                paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                here.push(Step::At(i));
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn is_scalar(doc: &Value, path: &[Step]) -> bool {
    let mut v = doc;
    for step in path {
        v = match (step, v) {
            (Step::Key(k), Value::Object(o)) => &o[k],
            (Step::At(i), Value::Array(a)) => &a[*i],
            _ => return false,
        };
    }
    !v.is_object() && !v.is_array()
}

fn node<'a>(mut v: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    for step in path {
        v = match (step, v) {
            (Step::Key(k), Value::Object(o)) => o.get_mut(k)?,
            (Step::At(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Applies `m` to `doc`; a mutation that would nest past [`MAX_DEPTH`] is skipped.
pub fn apply(doc: &mut Value, m: &Mutation) {
    let mut all = vec![];
    paths(doc, &mut vec![], &mut all);
    let pick = |i: &Index| all[i.index(all.len())].clone();
    let before = doc.clone();
    match m {
        Mutation::Drop(i) => {
            let path = pick(i);
            let Some((last, parent)) = path.split_last() else {
                *doc = Value::Null;
                return;
            };
            match (last, node(doc, parent)) {
                (Step::Key(k), Some(Value::Object(o))) => {
                    o.remove(k);
                }
                (Step::At(n), Some(Value::Array(a))) if *n < a.len() => {
                    a.remove(*n);
                }
                _ => {}
            }
        }
        Mutation::Replace(i, v) => {
            if let Some(n) = node(doc, &pick(i)) {
                *n = v.clone();
            }
        }
        Mutation::Nest(i, key, times) => {
            if let Some(n) = node(doc, &pick(i)) {
                for t in 0..*times {
                    let inner = n.take();
                    *n = if t % 2 == 0 { Value::Array(vec![inner]) } else { Value::Object(Map::from_iter([(key.clone(), inner)])) };
                }
            }
        }
        Mutation::Insert(i, key, v) => {
            if let Some(Value::Object(o)) = node(doc, &pick(i)) {
                o.insert(key.clone(), v.clone());
            }
        }
        Mutation::Scalar(i, v) => {
            let scalars: Vec<&Vec<Step>> = all.iter().filter(|p| is_scalar(doc, p)).collect();
            if !scalars.is_empty() {
                let path = scalars[i.index(scalars.len())].clone();
                if let Some(n) = node(doc, &path) {
                    *n = v.clone();
                }
            }
        }
        Mutation::Repeat(i, times) => {
            if let Some(Value::Array(a)) = node(doc, &pick(i)) {
                let copy = a.clone();
                for _ in 0..*times {
                    a.extend(copy.iter().cloned());
                }
            }
        }
    }
    if depth(doc) > MAX_DEPTH {
        *doc = before;
    }
}

fn mutation(keys: Vec<String>, strings: Vec<String>) -> BoxedStrategy<Mutation> {
    let scalar = prop_oneof![
        2 => prop::sample::select(vec!["", " ", "\t"]).prop_map(|s| Value::String(s.to_string())),
        3 => leaf(strings.clone()),
        1 => prop::sample::select(vec![Value::Null, Value::Bool(true), Value::from(0), Value::Array(vec![]), Value::Object(Map::new())]),
    ];
    let value = json_in(keys.clone(), strings);
    let k = key(keys);
    prop_oneof![
        6 => (any::<Index>(), scalar).prop_map(|(i, v)| Mutation::Scalar(i, v)),
        3 => any::<Index>().prop_map(Mutation::Drop),
        5 => (any::<Index>(), value.clone()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => (any::<Index>(), k.clone(), 1u8..40).prop_map(|(i, k, n)| Mutation::Nest(i, k, n)),
        3 => (any::<Index>(), k, value).prop_map(|(i, k, v)| Mutation::Insert(i, k, v)),
        1 => (any::<Index>(), 1u8..8).prop_map(|(i, n)| Mutation::Repeat(i, n)),
    ]
    .boxed()
}

/// Documents grown from `seeds` by a few mutations, using the seeds' own keys and values so a
/// mutated document stays close enough to the real thing to be read deeply.
pub fn mutated(seeds: Vec<Value>) -> BoxedStrategy<Value> {
    let (keys, strings) = vocabulary_of(&seeds);
    (prop::sample::select(seeds), prop::collection::vec(mutation(keys, strings), 0..8))
        .prop_map(|(mut doc, ms)| {
            for m in &ms {
                apply(&mut doc, m);
            }
            doc
        })
        .boxed()
}

/// Payloads for a reader whose real payloads are `seeds`: mutated seeds, and arbitrary JSON
/// spelt with the seeds' keys and values.
pub fn payloads(seeds: Vec<Value>) -> BoxedStrategy<Value> {
    let (keys, strings) = vocabulary_of(&seeds);
    prop_oneof![3 => mutated(seeds), 1 => json_in(keys, strings)].boxed()
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// A coherent canonical incident (a hold reason exactly when on hold, a resolution when
/// resolved or closed) with odd text in every free field.
pub fn incident() -> BoxedStrategy<Incident> {
    let codes: Vec<&'static str> = ResolutionCode::ALL.iter().map(|c| c.as_str()).collect();
    let optional = || prop::option::of(odd_text());
    (
        (1i64..10_000_000, odd_text(), odd_text(), prop::sample::select(Status::ALL.to_vec()), prop::sample::select(HoldReason::ALL.to_vec()), 1u8..=3, 1u8..=3),
        (optional(), optional(), optional(), odd_text(), prop::sample::select(codes), odd_text(), 1_500_000_000i64..2_000_000_000),
    )
        .prop_map(|((n, title, description, status, hold, impact, urgency), (category, service, ci, caller, code, notes, opened))| {
            let (impact, urgency) = (Impact::new(impact).expect("generated in 1..=3"), Urgency::new(urgency).expect("generated in 1..=3"));
            Incident {
                reference: TicketRef::incident(n),
                title,
                description,
                status,
                hold_reason: (status == Status::OnHold).then_some(hold),
                impact,
                urgency,
                priority: PriorityMatrix::default().derive(impact, urgency),
                priority_source: PrioritySource::Derived,
                category,
                service,
                ci,
                caller,
                assigned_supplier: None,
                resolution: matches!(status, Status::Resolved | Status::Closed).then(|| Resolution { code: code.to_string(), notes }),
                notes: vec![],
                opened_at: at(opened),
                updated_at: at(opened + 60),
                resolved_at: None,
                closed_at: None,
                version: 1,
                caused_by_change: None,
                fixed_by_change: None,
                legs: vec![],
                attachments: vec![],
            }
        })
        .boxed()
}
