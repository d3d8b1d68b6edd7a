//! Jira rich text <-> the canonical plain text.
//!
//! Jira holds descriptions and comments as ADF (Atlassian Document Format) and shows them as ADF
//! on REST v3, but as wiki-markup strings on REST v2 and in **every** webhook. The hub reads
//! both and writes ADF (v3) or escaped wiki (the JSM request API). The plain-text forms are
//! chosen so that the hub's own text survives every trip unchanged (`text -> ADF -> text` and
//! `text -> ADF -> wiki -> text` are identities): otherwise the echo of a hub write would read
//! as a supplier edit. Paragraphs are separated by a blank line (`"\n\n"`), a line break inside
//! a paragraph is `"\n"` (an ADF `hardBreak`).

use serde_json::{json, Value};

/// Characters wiki markup gives a meaning to; the hub escapes them with `\` when it writes wiki.
pub const WIKI_SPECIAL: &[char] = &['\\', '*', '_', '+', '-', '^', '~', '?', '{', '}', '[', ']', '|', '!', '#'];

// ---- ADF -> text -----------------------------------------------------------------------------

/// The plain text of an ADF document (or of any ADF node). A string is taken as already plain;
/// anything else that is not a node reads as empty.
pub fn adf_to_text(doc: &Value) -> String {
    match doc {
        Value::String(s) => s.clone(),
        Value::Object(_) if node_type(doc) == "doc" => blocks(children(doc), "\n\n"),
        Value::Object(_) => block(doc),
        _ => String::new(),
    }
}

fn node_type(n: &Value) -> &str {
    n.get("type").and_then(Value::as_str).unwrap_or("")
}

fn children(n: &Value) -> &[Value] {
    n.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn attr<'a>(n: &'a Value, name: &str) -> Option<&'a Value> {
    n.get("attrs").and_then(|a| a.get(name))
}

fn attr_str<'a>(n: &'a Value, name: &str) -> Option<&'a str> {
    attr(n, name).and_then(Value::as_str)
}

fn blocks(nodes: &[Value], sep: &str) -> String {
    nodes.iter().map(block).collect::<Vec<_>>().join(sep)
}

const INLINE: &[&str] = &["text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status", "placeholder", "inlineExtension", "mediaInline"];

fn block(n: &Value) -> String {
    match node_type(n) {
        "paragraph" | "heading" | "codeBlock" => inline(children(n)),
        "bulletList" => list(n, None),
        "orderedList" => list(n, Some(attr(n, "order").and_then(Value::as_u64).unwrap_or(1))),
        "taskList" | "decisionList" => children(n)
            .iter()
            .map(|item| {
                let done = attr_str(item, "state").is_some_and(|s| s == "DONE" || s == "DECIDED");
                let mark = if node_type(n) == "taskList" {
                    if done {
                        "[x] "
                    } else {
                        "[ ] "
                    }
                } else {
                    "- "
                };
                format!("{mark}{}", inline(children(item)))
            })
            .collect::<Vec<_>>()
            .join("\n"),
        "rule" => "---".into(),
        "table" => children(n).iter().map(|row| children(row).iter().map(|cell| blocks(children(cell), " ")).collect::<Vec<_>>().join(" | ")).collect::<Vec<_>>().join("\n"),
        "mediaSingle" | "mediaGroup" => children(n).iter().map(media).filter(|s| !s.is_empty()).collect::<Vec<_>>().join("\n"),
        "media" => media(n),
        "blockCard" | "embedCard" => attr_str(n, "url").unwrap_or("").to_string(),
        t if INLINE.contains(&t) => inline_node(n),
        // Containers (blockquote, panel, expand, layouts, extensions) and nodes added later:
        // their text, block by block.
        _ if children(n).iter().all(|c| INLINE.contains(&node_type(c))) => inline(children(n)),
        _ => blocks(children(n), "\n\n"),
    }
}

fn media(n: &Value) -> String {
    attr_str(n, "alt").map(|a| format!("[{a}]")).unwrap_or_default()
}

/// A list: one line per item, `- ` or `N. `, nested content indented by two spaces.
fn list(n: &Value, start: Option<u64>) -> String {
    children(n)
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let marker = match start {
                // Widened: a list may start anywhere a JSON number reaches.
                Some(s) => format!("{}. ", u128::from(s) + i as u128),
                None => "- ".to_string(),
            };
            let text = blocks(children(item), "\n");
            let mut lines = text.split('\n');
            let first = lines.next().unwrap_or("");
            std::iter::once(format!("{marker}{first}")).chain(lines.map(|l| format!("  {l}"))).collect::<Vec<_>>().join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn inline(nodes: &[Value]) -> String {
    nodes.iter().map(inline_node).collect()
}

fn inline_node(n: &Value) -> String {
    match node_type(n) {
        "text" => {
            let text = n.get("text").and_then(Value::as_str).unwrap_or("");
            let href = n.get("marks").and_then(Value::as_array).and_then(|marks| marks.iter().find(|m| node_type(m) == "link")).and_then(|m| attr_str(m, "href"));
            match href {
                Some(h) if h != text => format!("{text} ({h})"),
                _ => text.to_string(),
            }
        }
        "hardBreak" => "\n".into(),
        "mention" => attr_str(n, "text").map(str::to_string).unwrap_or_else(|| format!("@{}", attr_str(n, "id").unwrap_or(""))),
        "emoji" => attr_str(n, "text").or_else(|| attr_str(n, "shortName")).unwrap_or("").to_string(),
        "inlineCard" => attr_str(n, "url").unwrap_or("").to_string(),
        "status" => attr_str(n, "text").unwrap_or("").to_string(),
        "date" => attr(n, "timestamp")
            .and_then(|t| t.as_str().and_then(|s| s.parse::<i64>().ok()).or_else(|| t.as_i64()))
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        "mediaInline" => media(n),
        // An inline node with no text of its own (a placeholder, an inline extension) reads as
        // its content; a block found inline reads as a block.
        t if INLINE.contains(&t) && !children(n).is_empty() => inline(children(n)),
        _ if !children(n).is_empty() => block(n),
        _ => attr_str(n, "text").unwrap_or("").to_string(),
    }
}

// ---- text -> ADF -----------------------------------------------------------------------------

/// An ADF document holding `text`: one paragraph per `"\n\n"`-separated part, a `hardBreak` per
/// remaining `"\n"`. Empty text nodes are never written (Jira refuses them).
pub fn text_to_adf(text: &str) -> Value {
    let paragraphs: Vec<Value> = text
        .split("\n\n")
        .map(|p| {
            let mut content = Vec::new();
            for (i, line) in p.split('\n').enumerate() {
                if i > 0 {
                    content.push(json!({"type": "hardBreak"}));
                }
                if !line.is_empty() {
                    content.push(json!({"type": "text", "text": line}));
                }
            }
            if content.is_empty() {
                json!({"type": "paragraph"})
            } else {
                json!({"type": "paragraph", "content": content})
            }
        })
        .collect();
    json!({"type": "doc", "version": 1, "content": paragraphs})
}

// ---- text -> wiki ----------------------------------------------------------------------------

/// `text` as wiki markup that renders as exactly that text: every markup character escaped, and
/// a line that would read as a heading or quote (`h1. `, `bq. `) escaped at its dot.
pub fn text_to_wiki(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            let mut out = String::with_capacity(line.len() + 8);
            let block_prefix = block_prefix_len(line);
            for (i, c) in line.char_indices() {
                if WIKI_SPECIAL.contains(&c) || (block_prefix == Some(i + 1) && c == '.') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// For a line starting `h1.`..`h6.` or `bq.` followed by a space: the byte length of the prefix
/// up to and including the dot.
fn block_prefix_len(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let heading = b.len() >= 4 && b[0] == b'h' && (b'1'..=b'6').contains(&b[1]) && b[2] == b'.' && b[3] == b' ';
    let quote = b.len() >= 4 && &b[..3] == b"bq." && b[3] == b' ';
    (heading || quote).then_some(3)
}

// ---- wiki -> text ----------------------------------------------------------------------------

/// The plain text of wiki markup: `{code}`/`{noformat}` bodies verbatim, headings, quotes and
/// list markers reduced, `*strong*`-style emphasis unwrapped, links as `text (url)`, mentions
/// as `@id`, backslash escapes resolved (`\\` reads as one backslash, as the hub writes it).
pub fn wiki_to_text(wiki: &str) -> String {
    let mut out = String::new();
    let mut rest = wiki;
    loop {
        match find_verbatim_block(rest) {
            Some((start, tag, body_start)) => {
                out.push_str(&markup_text(&rest[..start]));
                let close = format!("{{{tag}}}");
                match rest[body_start..].find(&close) {
                    Some(len) => {
                        let body = &rest[body_start..body_start + len];
                        let body = body.strip_prefix('\n').unwrap_or(body);
                        out.push_str(body.strip_suffix('\n').unwrap_or(body));
                        rest = &rest[body_start + len + close.len()..];
                    }
                    None => {
                        out.push_str(&rest[body_start..]);
                        rest = "";
                    }
                }
            }
            None => {
                out.push_str(&markup_text(rest));
                break;
            }
        }
    }
    out
}

/// The next unescaped `{code…}` or `{noformat…}` opening tag: (its start, tag name, body start).
fn find_verbatim_block(s: &str) -> Option<(usize, &'static str, usize)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        if c != '{' {
            continue;
        }
        for tag in ["code", "noformat"] {
            let after = &s[i + 1..];
            if let Some(tail) = after.strip_prefix(tag) {
                if tail.starts_with('}') || tail.starts_with(':') {
                    let close = tail.find('}')?;
                    return Some((i, tag, i + 1 + tag.len() + close + 1));
                }
            }
        }
    }
    None
}

fn markup_text(s: &str) -> String {
    s.split('\n').map(markup_line).collect::<Vec<_>>().join("\n")
}

fn markup_line(line: &str) -> String {
    if let Some(n) = block_prefix_len(line) {
        return inline_wiki(&line[n + 1..]);
    }
    if line.trim() == "----" {
        return "---".into();
    }
    // List items: `* a`, `** b`, `# c`, `- d` (the marker run, then a space).
    let marker_len = line.bytes().take_while(|b| matches!(b, b'*' | b'#' | b'-')).count();
    if marker_len > 0 && line.as_bytes().get(marker_len) == Some(&b' ') {
        let depth = marker_len;
        let numbered = line.as_bytes()[marker_len - 1] == b'#';
        let marker = if numbered { "1. " } else { "- " };
        return format!("{}{marker}{}", "  ".repeat(depth - 1), inline_wiki(&line[marker_len + 1..]));
    }
    // Table rows: `||h1||h2||` or `|a|b|`, cells separated by unescaped bars.
    if line.starts_with('|') {
        let cells: Vec<String> = split_unescaped(line, '|').into_iter().map(|c| inline_wiki(c.trim())).filter(|c| !c.is_empty()).collect();
        return cells.join(" | ");
    }
    inline_wiki(line)
}

/// Splits on unescaped `sep`, dropping empty parts from doubled separators (`||`).
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            if i > start {
                parts.push(&s[start..i]);
            }
            start = i + c.len_utf8();
        }
    }
    if start < s.len() {
        parts.push(&s[start..]);
    }
    parts
}

/// One character of a wiki line, and whether a backslash escaped it.
#[derive(Clone, Copy)]
struct Tok {
    c: char,
    escaped: bool,
}

fn tokens(s: &str) -> Vec<Tok> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // `\X` escapes X unless X is a letter or digit (a Windows path such as C:\temp stays).
        if c == '\\' {
            if let Some(&next) = chars.get(i + 1) {
                if !next.is_alphanumeric() {
                    out.push(Tok { c: next, escaped: true });
                    i += 2;
                    continue;
                }
            }
        }
        out.push(Tok { c, escaped: false });
        i += 1;
    }
    out
}

fn inline_wiki(line: &str) -> String {
    let toks = tokens(line);
    render_tokens(&toks)
}

fn plain(toks: &[Tok]) -> String {
    toks.iter().map(|t| t.c).collect()
}

fn is_markup(t: &Tok, c: char) -> bool {
    !t.escaped && t.c == c
}

fn find_from(toks: &[Tok], from: usize, c: char) -> Option<usize> {
    (from..toks.len()).find(|&j| is_markup(&toks[j], c))
}

const EMPHASIS: &[char] = &['*', '_', '+', '-', '^', '~'];

fn render_tokens(toks: &[Tok]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        if t.escaped {
            out.push(t.c);
            i += 1;
            continue;
        }
        match t.c {
            '[' => {
                if let Some(end) = find_from(toks, i + 1, ']') {
                    out.push_str(&link(&toks[i + 1..end]));
                    i = end + 1;
                    continue;
                }
            }
            '!' => {
                // An embedded image or file: `!name.png!` or `!name.png|thumbnail!`.
                if let Some(end) = find_from(toks, i + 1, '!') {
                    let inner = &toks[i + 1..end];
                    if !inner.is_empty() && !inner.iter().any(|t| t.c.is_whitespace()) {
                        let name_end = inner.iter().position(|t| is_markup(t, '|')).unwrap_or(inner.len());
                        out.push_str(&format!("[{}]", plain(&inner[..name_end])));
                        i = end + 1;
                        continue;
                    }
                }
            }
            '{' => {
                if i + 1 < toks.len() && is_markup(&toks[i + 1], '{') {
                    // {{monospace}}
                    if let Some(end) = (i + 2..toks.len().saturating_sub(1)).find(|&j| is_markup(&toks[j], '}') && is_markup(&toks[j + 1], '}')) {
                        out.push_str(&plain(&toks[i + 2..end]));
                        i = end + 2;
                        continue;
                    }
                }
                if let Some(end) = find_from(toks, i + 1, '}') {
                    let tag = plain(&toks[i + 1..end]);
                    let name = tag.split(':').next().unwrap_or("");
                    if matches!(name, "quote" | "panel" | "color" | "anchor" | "section" | "column" | "expand") {
                        i = end + 1;
                        continue;
                    }
                }
            }
            '?' if i + 1 < toks.len() && is_markup(&toks[i + 1], '?') => {
                // ??citation??
                if let Some(end) = (i + 2..toks.len().saturating_sub(1)).find(|&j| is_markup(&toks[j], '?') && is_markup(&toks[j + 1], '?')) {
                    if end > i + 2 {
                        out.push_str(&render_tokens(&toks[i + 2..end]));
                        i = end + 2;
                        continue;
                    }
                }
            }
            c if EMPHASIS.contains(&c) => {
                if let Some(end) = emphasis_end(toks, i) {
                    out.push_str(&render_tokens(&toks[i + 1..end]));
                    i = end + 1;
                    continue;
                }
            }
            _ => {}
        }
        out.push(t.c);
        i += 1;
    }
    out
}

/// The closing marker of emphasis opened at `i`, under wiki's word-boundary rules: the opener
/// follows a non-word character and precedes a non-space; the closer follows a non-space and
/// precedes a non-word character.
fn emphasis_end(toks: &[Tok], i: usize) -> Option<usize> {
    let c = toks[i].c;
    let before_ok = i == 0 || !toks[i - 1].c.is_alphanumeric();
    let after = toks.get(i + 1)?;
    if !before_ok || after.c.is_whitespace() || is_markup(after, c) {
        return None;
    }
    (i + 2..toks.len()).find(|&j| is_markup(&toks[j], c) && !toks[j - 1].c.is_whitespace() && toks.get(j + 1).is_none_or(|n| !n.c.is_alphanumeric()))
}

/// `[text|url]` -> `text (url)`, `[url]` -> `url`, `[~accountid:X]` / `[~X]` -> `@X`.
fn link(inner: &[Tok]) -> String {
    if inner.first().is_some_and(|t| is_markup(t, '~')) {
        let who = plain(&inner[1..]);
        return format!("@{}", who.strip_prefix("accountid:").unwrap_or(&who));
    }
    match inner.iter().position(|t| is_markup(t, '|')) {
        Some(bar) => {
            let text = render_tokens(&inner[..bar]);
            let url = plain(&inner[bar + 1..]);
            if text == url || text.is_empty() {
                url
            } else {
                format!("{text} ({url})")
            }
        }
        None => plain(inner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use proptest::prelude::*;

    const SAMPLES: &[&str] = &[
        "",
        "plain",
        "two\nlines",
        "para one\n\npara two",
        "a\n\n\nb",
        "a\n\n\n\nb",
        "trailing\n",
        "\nleading",
        "core-switch-02 is *down* (see [KB-12]) | 50% _loss_ ~ok~ ^x^ +y+ ?? {code} #3 !alert!",
        "h1. not a heading\nbq. not a quote\n* not a list\n# nor this\n----",
        "C:\\temp\\logs and a \\\\ share \\n",
        "emoji 🚀 and ümlauts",
        "windows\r\nline ends\r\n\r\nkept",
    ];

    /// What the simulator (and Jira) does with ADF on the way to a v2 / webhook body.
    fn adf_to_wiki_like_jira(doc: &Value) -> String {
        children(doc)
            .iter()
            .map(|p| {
                children(p)
                    .iter()
                    .map(|n| match node_type(n) {
                        "hardBreak" => "\n".to_string(),
                        _ => text_to_wiki(n["text"].as_str().unwrap()),
                    })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    #[test]
    fn hub_text_survives_adf_and_wiki_trips() {
        for s in SAMPLES {
            let adf = text_to_adf(s);
            assert_eq!(adf_to_text(&adf), *s, "text -> ADF -> text");
            assert_eq!(wiki_to_text(&adf_to_wiki_like_jira(&adf)), *s, "text -> ADF -> wiki -> text");
            assert_eq!(wiki_to_text(&text_to_wiki(s)), *s, "text -> wiki -> text");
        }
    }

    const ADF_TYPES: &[&str] = &[
        "doc",
        "paragraph",
        "heading",
        "codeBlock",
        "bulletList",
        "orderedList",
        "listItem",
        "taskList",
        "taskItem",
        "decisionList",
        "decisionItem",
        "rule",
        "table",
        "tableRow",
        "tableCell",
        "mediaSingle",
        "mediaGroup",
        "media",
        "blockCard",
        "embedCard",
        "text",
        "hardBreak",
        "mention",
        "emoji",
        "inlineCard",
        "date",
        "status",
        "placeholder",
        "inlineExtension",
        "mediaInline",
        "panel",
        "blockquote",
        "expand",
        "unknownFutureNode",
        "",
    ];

    /// ADF as Jira sends it, and as nobody should: every node type, with attributes of odd
    /// types and values (list starts near the end of the number range, dates out of range).
    fn adf() -> BoxedStrategy<Value> {
        let scalar = prop_oneof![
            1 => testkit::odd_text().prop_map(Value::from),
            1 => any::<u64>().prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
            2 => prop::sample::select(vec![json!(u64::MAX), json!(i64::MAX), json!(i64::MIN), json!(null), json!(true), json!(1.5), json!("DONE"), json!("DECIDED")]),
        ];
        let attrs = prop::collection::btree_map(prop::sample::select(vec!["order", "state", "url", "alt", "text", "id", "shortName", "timestamp", "level"]), scalar, 0..4)
            .prop_map(|m| json!(m));
        let marks = prop::collection::vec(
            (prop::sample::select(vec!["link", "strong", "code"]), testkit::odd_text()).prop_map(|(t, href)| json!({"type": t, "attrs": {"href": href}})),
            0..3,
        );
        let kind = || prop_oneof![prop::sample::select(ADF_TYPES), prop::sample::select(vec!["orderedList", "bulletList", "listItem", "paragraph", "text", "placeholder"])];
        let leaf = (kind(), testkit::odd_text(), attrs.clone(), marks).prop_map(|(t, text, attrs, marks)| json!({"type": t, "text": text, "attrs": attrs, "marks": marks}));
        leaf.prop_recursive(8, 96, 6, move |inner| {
            (kind(), attrs.clone(), prop::collection::vec(inner, 0..6)).prop_map(|(t, attrs, content)| json!({"type": t, "attrs": attrs, "content": content}))
        })
        .boxed()
    }

    /// Text of any characters, many lines and markup characters.
    fn hub_text() -> BoxedStrategy<String> {
        prop_oneof!["(?s).{0,60}", "[ab1 .:/\\\\*_+^~?{}\\[\\]|!#h\n\r\tqü🚀-]{0,60}", testkit::odd_text()].boxed()
    }

    proptest! {
        #![proptest_config(testkit::config(256))]

        /// The hub's own text survives every trip it makes through Jira.
        #[test]
        fn any_text_survives_every_trip(s in hub_text()) {
            let adf = text_to_adf(&s);
            prop_assert_eq!(adf_to_text(&adf), s.clone(), "text -> ADF -> text");
            prop_assert_eq!(wiki_to_text(&adf_to_wiki_like_jira(&adf)), s.clone(), "text -> ADF -> wiki -> text");
            prop_assert_eq!(wiki_to_text(&text_to_wiki(&s)), s, "text -> wiki -> text");
        }

        /// Any string is some wiki markup: it reads as text.
        #[test]
        fn any_wiki_reads_as_text(s in hub_text()) {
            let _ = wiki_to_text(&s);
            let _ = wiki_to_text(&format!("{{code}}{s}"));
            let _ = wiki_to_text(&format!("{{noformat:x}}\n{s}\n{{noformat}}{s}"));
        }

        /// Any ADF, or any JSON at all, reads as text.
        #[test]
        fn any_adf_reads_as_text(doc in adf(), wrap in any::<bool>(), other in testkit::json()) {
            let doc = if wrap { json!({"type": "doc", "version": 1, "content": [doc]}) } else { doc };
            let _ = adf_to_text(&doc);
            let _ = adf_to_text(&other);
        }
    }

    /// An inline node of a kind with no text of its own that holds content (a placeholder, an
    /// inline extension) reads as that content, at the top of a document or inside a paragraph.
    #[test]
    fn inline_nodes_holding_content_read_as_their_content() {
        for kind in ["placeholder", "inlineExtension"] {
            let node = json!({"type": kind, "attrs": {"text": "hint"}, "content": [{"type": "text", "text": "kept"}]});
            assert_eq!(adf_to_text(&node), "kept", "{kind}");
            let doc = json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "a "}, node]}]});
            assert_eq!(adf_to_text(&doc), "a kept", "{kind}");
            assert_eq!(adf_to_text(&json!({"type": kind, "attrs": {"text": "hint"}})), "hint", "{kind} without content");
        }
    }

    /// An ordered list may claim to start anywhere a JSON number reaches: its items still read.
    #[test]
    fn an_ordered_list_starting_at_the_end_of_the_number_range_reads() {
        let item = |t: &str| json!({"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": t}]}]});
        let list = json!({"type": "orderedList", "attrs": {"order": u64::MAX}, "content": [item("a"), item("b")]});
        assert_eq!(adf_to_text(&list), format!("{}. a\n{}. b", u64::MAX, u128::from(u64::MAX) + 1));
    }

    #[test]
    fn adf_nodes_read_as_text() {
        let doc = json!({"type":"doc","version":1,"content":[
            {"type":"heading","attrs":{"level":2},"content":[{"type":"text","text":"Impact"}]},
            {"type":"paragraph","content":[{"type":"text","text":"Plain "},{"type":"text","text":"bold","marks":[{"type":"strong"}]},
                {"type":"text","text":" see "},{"type":"text","text":"runbook","marks":[{"type":"link","attrs":{"href":"https://kb/1"}}]},
                {"type":"hardBreak"},{"type":"mention","attrs":{"id":"5b10a","text":"@Alana Grant"}}]},
            {"type":"codeBlock","attrs":{"language":"bash"},"content":[{"type":"text","text":"ping 10.0.0.1"}]},
            {"type":"bulletList","content":[
                {"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"item"}]},
                    {"type":"orderedList","attrs":{"order":3},"content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"nested"}]}]}]}]}]},
            {"type":"rule"},
            {"type":"panel","attrs":{"panelType":"info"},"content":[{"type":"paragraph","content":[{"type":"text","text":"in a panel"}]}]},
            {"type":"mediaSingle","content":[{"type":"media","attrs":{"type":"file","id":"x","alt":"trace.png"}}]},
            {"type":"unknownFutureNode","content":[{"type":"text","text":"still read"}]}
        ]});
        assert_eq!(
            adf_to_text(&doc),
            "Impact\n\nPlain bold see runbook (https://kb/1)\n@Alana Grant\n\nping 10.0.0.1\n\n- item\n  3. nested\n\n---\n\nin a panel\n\n[trace.png]\n\nstill read"
        );
        assert_eq!(adf_to_text(&Value::Null), "");
        assert_eq!(adf_to_text(&json!(42)), "");
    }

    #[test]
    fn wiki_markup_reads_as_text() {
        let wiki = "h2. Impact\nUsers on *floor 3* lost _all_ Wi-Fi, see [runbook|https://kb/1] and [~accountid:5b10a]\n{code:bash}\nping *10.0.0.1*\n{code}\n* first\n** second\n# one\n||a||b||\n|1|2|\n{quote}quoted{quote} {color:red}red{color} {{mono}} !trace.png|thumbnail!";
        assert_eq!(
            wiki_to_text(wiki),
            "Impact\nUsers on floor 3 lost all Wi-Fi, see runbook (https://kb/1) and @5b10a\nping *10.0.0.1*\n- first\n  - second\n1. one\na | b\n1 | 2\nquoted red mono [trace.png]"
        );
    }

    #[test]
    fn unbalanced_markup_is_kept_literally() {
        assert_eq!(wiki_to_text("5 * 3 = 15, a_b_c, [open, {code"), "5 * 3 = 15, a_b_c, [open, {code");
        assert_eq!(wiki_to_text("x\\"), "x\\");
    }
}
