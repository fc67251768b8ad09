//! The module layers of README's module map, checked from the source: every `crate::x`
//! (`$crate::x` in macros, `super::x` that climbs to the crate root, and `estd::x` in
//! main.rs) a file names, in `use` lines and in inline paths, must point to a module below
//! the file's own, and the client to the wire codec and the shared value types only. No
//! compiler help needed: it reads `src/` as text. Not followed: aliases of the crate
//! (`use crate as c`), which no file uses.
//!
//! `cargo test --test layers -- --nocapture` prints the import graph between the top-level
//! modules and its cycles (none, when the test passes).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may name modules of a lower layer only: modules of
/// one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    // leaves: the wire codec, shared value types and checks, counters
    &["est", "model", "metrics"],
    &["fields", "gate", "scep_wire"],
    // the domain's parts
    &["ca", "auth", "pack"],
    &["policy", "store"],
    &["revocation"],
    // what an enrollment or an issuance is, whoever asks
    &["enroll"],
    &["service"],
    &["jobs"],
    // the HTTP plumbing the adapters share
    &["web"],
    // the adapters: HTTP (EST, JSON API, CRL/OCSP), the portal, the EST client, the
    // connection to upstream CAs
    &["api", "portal", "client", "outbound"],
    // listeners, configuration, wiring
    &["server"],
    &["config"],
    &["app"],
    &["main"],
];

/// Modules that may be named only from these (besides the rank rule).
const ONLY_FROM: &[(&str, &[&str])] = &[("config", &["app", "main"])];

/// What the client may name: the wire codec and the shared value types, nothing of the
/// server.
const CLIENT_MAY_USE: &[&str] = &["est", "model", "fields", "scep_wire"];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to: `src/api/est.rs` → `api`, `src/gate.rs` → `gate`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_string())
}

/// How many `super::` lead from a file's module to the crate root: `src/gate.rs` and
/// `src/api/mod.rs` 1, `src/api/est.rs` 2, `src/portal/pages/bulk.rs` 3.
fn depth_of(src: &Path, file: &Path) -> usize {
    let Ok(rel) = file.strip_prefix(src) else {
        return 0;
    };
    let parts = rel.components().count();
    if rel.file_name().is_some_and(|n| n == "mod.rs") {
        parts - 1
    } else {
        parts
    }
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Top-level modules named after `prefix::` in code: `crate::api::x`, `crate::{ca,
/// model::Role}` (the first name of each item in braces). `$crate::` counts as `crate::`;
/// `my_crate::` does not.
fn named(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        let after = &rest[i + prefix.len()..];
        rest = after;
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        names_after(after, &mut out);
    }
    out
}

/// Top-level modules named through `super::` chains that reach the crate root from a file
/// `depth` modules deep: from `src/api/est.rs` (2), `super::super::portal::x` names `portal`.
fn named_through_super(code: &str, depth: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("super::") {
        let before = rest[..i].chars().last();
        rest = &rest[i..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            rest = &rest["super::".len()..];
            continue;
        }
        let mut n = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            n += 1;
            rest = r;
        }
        if n == depth {
            names_after(rest, &mut out);
        }
    }
    out
}

/// The first name after a path prefix, or the first name of each item of a `{…}` group.
fn names_after(after: &str, out: &mut Vec<String>) {
    {
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 0usize;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        start = false;
                        let id = ident_at(&group[j..]);
                        if !id.is_empty() && id != "self" {
                            out.push(id.to_string());
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let id = ident_at(after);
            if !id.is_empty() {
                out.push(id.to_string());
            }
        }
    }
}

/// Joins a file's lines into code with line comments left out (a `//` after a `"` on its
/// line is kept, in case it is inside a string), so that a `use crate::{` spread over
/// several lines reads as one.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        let line = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        code.push_str(line);
        code.push('\n');
    }
    code
}

struct Graph {
    /// module → module → files that name it
    edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let Some(from) = module_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("a source file");
        let code = code_of(&text);
        let prefix = if from == "main" { "estd::" } else { "crate::" };
        let rel = file
            .strip_prefix(src.parent().expect("src has a parent"))
            .expect("under the manifest directory")
            .display()
            .to_string();
        let entry = edges.entry(from.clone()).or_default();
        let mut names = named(&code, prefix);
        names.extend(named_through_super(&code, depth_of(&src, &file)));
        for to in names {
            // the lib's own helpers (`crate::outln`, `crate::write_out`) are not modules
            if to == from || rank(&to).is_none() && !is_module(&src, &to) {
                continue;
            }
            entry.entry(to).or_default().insert(rel.clone());
        }
    }
    Graph { edges }
}

fn is_module(src: &Path, name: &str) -> bool {
    src.join(format!("{name}.rs")).exists() || src.join(name).is_dir()
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        if let Some(tos) = t.g.edges.get(v) {
            for w in tos.keys() {
                let w = w.as_str();
                if !t.index.contains_key(w) {
                    visit(t, w);
                    let l = t.low[v].min(t.low[w]);
                    t.low.insert(v, l);
                } else if t.on.contains(w) {
                    let l = t.low[v].min(t.index[w]);
                    t.low.insert(v, l);
                }
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    let nodes: Vec<&str> = g.edges.keys().map(String::as_str).collect();
    for v in nodes {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// What breaks the layers in a graph of module → module → files.
fn violations(edges: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (from, tos) in edges {
        let Some(rf) = rank(from) else {
            wrong.push(format!("{from}: not in the layer table (tests/layers.rs)"));
            continue;
        };
        for (to, files) in tos {
            let files: Vec<&str> = files.iter().map(String::as_str).collect();
            let files = files.join(", ");
            let Some(rt) = rank(to) else {
                wrong.push(format!("{to}: not in the layer table (named from {files})"));
                continue;
            };
            if from == "client" && !CLIENT_MAY_USE.contains(&to.as_str()) {
                wrong.push(format!(
                    "client -> {to}: the client names server code ({files})"
                ));
            } else if rt >= rf {
                wrong.push(format!("{from} -> {to}: not a lower layer ({files})"));
            }
            for (only, allowed) in ONLY_FROM {
                if to == only && !allowed.contains(&from.as_str()) {
                    wrong.push(format!(
                        "{from} -> {to}: only {allowed:?} read it ({files})"
                    ));
                }
            }
        }
    }
    wrong
}

#[test]
fn imports_point_down_the_layers_only() {
    let g = graph();
    println!("import graph (module -> modules it names):");
    for (from, tos) in &g.edges {
        let list: Vec<&str> = tos.keys().map(String::as_str).collect();
        println!("  {from:<8} -> {}", list.join(" "));
    }
    let cyc = cycles(&g);
    println!("cycles: {}", cyc.len());
    for c in &cyc {
        println!("  {}", c.join(" <-> "));
    }

    let wrong = violations(&g.edges);
    if !wrong.is_empty() {
        println!("imports against the layers: {}", wrong.len());
        for w in &wrong {
            println!("  {w}");
        }
    }
    assert!(
        wrong.is_empty() && cyc.is_empty(),
        "{} imports against the layers, {} cycles (printed above; run with --nocapture)",
        wrong.len(),
        cyc.len()
    );
}

/// The modules below the HTTP adapters: no HTTP framework in them (typed requests in,
/// typed results or domain errors out). `client` and `server` speak HTTP themselves.
const NO_HTTP: &[&str] = &[
    "est",
    "scep_wire",
    "model",
    "metrics",
    "fields",
    "gate",
    "ca",
    "auth",
    "pack",
    "policy",
    "store",
    "revocation",
    "enroll",
    "service",
    "jobs",
    "config",
];

#[test]
fn no_http_types_below_the_adapters() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut found = Vec::new();
    for f in &files {
        let Some(m) = module_of(&src, f) else {
            continue;
        };
        if !NO_HTTP.contains(&m.as_str()) {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(f).expect("a source file"));
        for name in [
            "axum::",
            "hyper::",
            "hyper_util::",
            "http::",
            "http_body_util::",
            "tower::",
            "tower_http::",
        ] {
            if code.contains(name) {
                found.push(format!("{} names {name}", f.display()));
            }
        }
    }
    assert!(found.is_empty(), "HTTP below the adapters: {found:?}");
}

/// A source file longer than this holds more than one can keep in mind: split it by
/// concern (its tests may go to a sibling `tests.rs`).
const MAX_LINES: usize = 900;

#[test]
fn no_source_file_is_too_long() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).ok()?.lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_parser_finds_grouped_and_inline_paths() {
    let code = code_of(
        "use crate::{ca::{self, hex}, model::Role,\n  store};\n// crate::portal in a comment\nlet x = crate::api::media_type_is(y); $crate::jobs::x(); other_crate::x; a::crate::b;",
    );
    assert_eq!(
        named(&code, "crate::"),
        ["ca", "model", "store", "api", "jobs"]
    );
    // from src/api/est.rs (two deep): super::super:: is the crate root, super:: is api
    let code =
        code_of("use super::super::{portal, web::x};\nuse super::json;\nsuper::super::app::y();");
    assert_eq!(named_through_super(&code, 2), ["portal", "web", "app"]);
    assert_eq!(named_through_super(&code, 1), ["json"]);
    let root = Path::new("/s");
    assert_eq!(depth_of(root, Path::new("/s/gate.rs")), 1);
    assert_eq!(depth_of(root, Path::new("/s/api/mod.rs")), 1);
    assert_eq!(depth_of(root, Path::new("/s/api/est.rs")), 2);
    assert_eq!(depth_of(root, Path::new("/s/portal/pages/bulk.rs")), 3);
}

#[test]
fn an_upward_import_is_refused() {
    fn add(g: &mut BTreeMap<String, BTreeMap<String, BTreeSet<String>>>, from: &str, to: &str) {
        g.entry(from.into())
            .or_default()
            .entry(to.into())
            .or_default()
            .insert(format!("src/{from}/x.rs"));
    }
    let mut g = BTreeMap::new();
    add(&mut g, "api", "enroll"); // down: fine
    add(&mut g, "client", "est"); // the wire codec: fine
    assert!(violations(&g).is_empty());
    add(&mut g, "portal", "api"); // one adapter into the other
    add(&mut g, "client", "ca"); // the client into the server
    add(&mut g, "store", "enroll"); // up
    add(&mut g, "ca", "config"); // config is for app and main
    let v = violations(&g);
    for want in [
        "portal -> api",
        "client -> ca",
        "store -> enroll",
        "ca -> config",
    ] {
        assert!(
            v.iter().any(|w| w.starts_with(want)),
            "{want} not caught: {v:?}"
        );
    }
}

#[test]
fn the_crate_root_re_exports_nothing() {
    // `pub use api::AppState;` in lib.rs would let any layer write `crate::AppState` unseen
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("src/lib.rs");
    assert!(
        !code_of(&lib)
            .lines()
            .any(|l| l.trim_start().starts_with("pub use")),
        "src/lib.rs re-exports a module's item"
    );
}

#[test]
fn an_upward_import_is_caught() {
    // the check's own arithmetic: a portal file naming the JSON API is refused
    let (p, a) = (rank("portal"), rank("api"));
    assert!(
        p.is_some() && p == a,
        "portal and api are adapters of one layer"
    );
    assert!(rank("est") < rank("policy") && rank("enroll") < rank("api"));
    assert!(rank("config") > rank("server"));
}
