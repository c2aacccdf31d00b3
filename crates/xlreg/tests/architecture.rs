//! No import circles in the library: for every module, its own body and
//! its child modules must depend on each other one way only (directly or
//! through a longer cycle). A circle makes a module impossible to read,
//! test or move on its own; issue 17 asked that no two modules of the
//! library import each other.
//!
//! The check reads `crates/xlreg/src/**/*.rs` as text (comments, strings
//! and `#[cfg(test)]` modules removed), resolves every `crate::`, `super::`,
//! `self::` and child-module path (in `use` trees and in code) to the
//! module that defines the item (following `pub use` re-exports), and lifts
//! each edge to the level where the two modules are siblings: an edge from
//! `server::connection` to `registry::backend` is `server -> registry` at
//! the crate root; one from `server::connection` to an item defined in
//! `server/mod.rs` is `connection -> (server's own body)`. A `pub use` in a
//! module body is its public surface, not a dependency, unless the body's
//! own code uses the name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

/// Cycles that are deliberate, with the reason: (parent module, the
/// modules of the cycle, sorted; `<body>` is the parent's own file).
const ALLOWED: &[(&str, &[&str], &str)] = &[];

#[test]
fn no_import_cycles_between_sibling_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let cycles = find_cycles(&src);
    let mut failures = Vec::new();
    for c in &cycles {
        let allowed = ALLOWED.iter().any(|(parent, members, _)| {
            *parent == c.parent
                && members.iter().map(|m| m.to_string()).collect::<Vec<_>>() == c.members
        });
        if !allowed {
            failures.push(c.describe());
        }
    }
    assert!(
        failures.is_empty(),
        "{} import cycle(s) between sibling modules of crates/xlreg/src:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_checker_finds_a_planted_cycle() {
    // Two sibling modules that import each other, and a longer cycle
    // through a parent's body: the check must name both.
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path();
    std::fs::create_dir_all(s.join("a")).unwrap();
    std::fs::write(s.join("lib.rs"), "pub mod a;\npub mod b;\npub mod c;\n").unwrap();
    std::fs::write(
        s.join("a/mod.rs"),
        "mod x;\nmod y;\npub use x::X;\npub struct Top;\nfn f() { y::g(); }\n",
    )
    .unwrap();
    std::fs::write(s.join("a/x.rs"), "pub struct X;\n").unwrap();
    std::fs::write(s.join("a/y.rs"), "use super::Top;\npub fn g() {}\n").unwrap();
    std::fs::write(s.join("b.rs"), "use crate::c::C;\npub struct B;\n").unwrap();
    std::fs::write(
        s.join("c.rs"),
        "// use crate::b::B; in a comment is not an import\npub struct C;\nfn f() -> crate::b::B { todo!() }\n#[cfg(test)]\nmod tests { use crate::a::Top; }\n",
    )
    .unwrap();
    let cycles: Vec<String> = find_cycles(s).iter().map(|c| c.describe()).collect();
    assert_eq!(cycles.len(), 2, "{cycles:#?}");
    assert!(cycles[0].starts_with("crate: b <-> c"), "{cycles:#?}");
    assert!(cycles[1].starts_with("a: <body> <-> y"), "{cycles:#?}");
    // The re-export `pub use x::X` alone is not an edge body -> x.
    assert!(!cycles.iter().any(|c| c.contains(" x")), "{cycles:#?}");
}

struct Cycle {
    parent: String,
    members: Vec<String>,
    edges: Vec<String>,
}

impl Cycle {
    fn describe(&self) -> String {
        format!(
            "{}: {}\n{}",
            self.parent,
            self.members.join(" <-> "),
            self.edges
                .iter()
                .map(|e| format!("    {e}\n"))
                .collect::<String>()
        )
    }
}

struct Module {
    file: PathBuf,
    /// Code with comments, strings and test modules blanked.
    code: String,
}

fn find_cycles(src: &Path) -> Vec<Cycle> {
    let mut modules: BTreeMap<ModPath, Module> = BTreeMap::new();
    collect(src, src, &mut modules);
    let names: BTreeSet<ModPath> = modules.keys().cloned().collect();

    // Pass 1: re-export maps (module, name) -> module the path resolves to.
    let mut reexports: BTreeMap<(ModPath, String), ModPath> = BTreeMap::new();
    for _ in 0..3 {
        let mut next = BTreeMap::new();
        for (m, module) in &modules {
            for u in uses(&module.code) {
                if !u.public {
                    continue;
                }
                for (path, alias) in expand_tree(&u.tree) {
                    if let Some(t) = resolve(m, &path, &names, &reexports) {
                        next.insert((m.clone(), alias), t);
                    }
                }
            }
        }
        reexports = next;
    }

    // Pass 2: edges (from module, to module) with evidence.
    let mut edges: BTreeMap<(ModPath, ModPath), String> = BTreeMap::new();
    for (m, module) in &modules {
        let code = &module.code;
        let mut add = |path: &[String], line: usize| {
            if let Some(t) = resolve(m, path, &names, &reexports) {
                if &t != m {
                    edges.entry((m.clone(), t)).or_insert_with(|| {
                        format!("{}:{}: {}", module.file.display(), line, path.join("::"))
                    });
                }
            }
        };
        let use_spans: Vec<(usize, usize)> = uses(code).iter().map(|u| u.span).collect();
        for u in uses(code) {
            let line = line_of(code, u.span.0);
            for (path, alias) in expand_tree(&u.tree) {
                // A re-export counts only if the body's own code uses it.
                if u.public && !used_outside(code, &alias, &use_spans) {
                    continue;
                }
                add(&path, line);
            }
        }
        for (path, pos) in code_paths(code, &use_spans) {
            add(&path, line_of(code, pos));
        }
    }

    // Lift every edge to sibling level and group by parent.
    let body = "<body>".to_string();
    let mut graphs: BTreeMap<ModPath, BTreeMap<(String, String), String>> = BTreeMap::new();
    for ((from, to), why) in &edges {
        let l = common_prefix(from, to);
        let a = from.get(l).cloned().unwrap_or_else(|| body.clone());
        let b = to.get(l).cloned().unwrap_or_else(|| body.clone());
        if a == b {
            continue;
        }
        let parent: ModPath = from[..l].to_vec();
        let e = format!("{} -> {}  ({why})", disp(from), disp(to));
        graphs
            .entry(parent)
            .or_default()
            .entry((a, b))
            .and_modify(|s| {
                if s.len() < 400 {
                    s.push_str(&format!("; {e}"))
                }
            })
            .or_insert(e);
    }
    let mut out = Vec::new();
    for (parent, g) in &graphs {
        for scc in sccs(g) {
            let edges = g
                .iter()
                .filter(|((a, b), _)| scc.contains(a) && scc.contains(b))
                .map(|((a, b), why)| format!("{a} -> {b}: {why}"))
                .collect();
            out.push(Cycle {
                parent: disp(parent),
                members: scc.into_iter().collect(),
                edges,
            });
        }
    }
    out
}

fn disp(m: &ModPath) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

fn common_prefix(a: &ModPath, b: &ModPath) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Strongly connected components with more than one node.
fn sccs(g: &BTreeMap<(String, String), String>) -> Vec<BTreeSet<String>> {
    let nodes: BTreeSet<&String> = g.keys().flat_map(|(a, b)| [a, b]).collect();
    let reach = |start: &String| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.clone()];
        while let Some(n) = stack.pop() {
            for (a, b) in g.keys() {
                if *a == n && seen.insert(b.clone()) {
                    stack.push(b.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    for n in &nodes {
        let scc: BTreeSet<String> = nodes
            .iter()
            .filter(|m| reaches[*n].contains(**m) && reaches[**m].contains(*n))
            .map(|m| (*m).clone())
            .collect();
        if scc.len() > 1 && !out.contains(&scc) {
            out.push(scc);
        }
    }
    out
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<ModPath, Module>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(root, &p, out);
            continue;
        }
        if p.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let rel = p.strip_prefix(root).unwrap();
        let mut m: ModPath = rel
            .with_extension("")
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        if matches!(m.last().map(String::as_str), Some("mod") | Some("lib")) {
            m.pop();
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let code = drop_test_modules(&blank_comments_and_strings(&text));
        // Inline (non-test) modules are part of their file's module here.
        out.insert(
            m,
            Module {
                file: p
                    .strip_prefix(root.parent().unwrap())
                    .unwrap()
                    .to_path_buf(),
                code,
            },
        );
    }
}

/// Replace comments and string/char literal contents with spaces (keeping
/// newlines so line numbers stay right).
fn blank_comments_and_strings(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (c.get(i + 1) == Some(&'"') || c.get(i + 1) == Some(&'#'))
            && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_'))
        {
            // Raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            out.push('"');
            i = j + 1;
            while i < c.len() {
                if c[i] == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(c[i]));
                i += 1;
            }
            out.push('"');
        } else if c[i] == '"' {
            out.push('"');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < c.len() {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c[i] == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if c.get(i + 1) == Some(&'\\') {
                let mut j = i + 2;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                out.push_str(&" ".repeat(j + 1 - i));
                i = j + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                out.push_str("   ");
                i += 3;
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Blank `#[cfg(test)] mod NAME { … }` blocks.
fn drop_test_modules(code: &str) -> String {
    let mut out = code.to_string();
    let mut from = 0;
    while let Some(p) = out[from..].find("#[cfg(test)]") {
        let start = from + p;
        let after = &out[start + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let rest = trimmed
            .strip_prefix("pub(crate) ")
            .or_else(|| trimmed.strip_prefix("pub "))
            .unwrap_or(trimmed);
        if !rest.starts_with("mod ") {
            from = start + 1;
            continue;
        }
        let Some(open_rel) = out[start..].find(['{', ';']) else {
            break;
        };
        let open = start + open_rel;
        if out.as_bytes()[open] == b';' {
            from = open;
            continue;
        }
        let bytes = out.as_bytes();
        let mut depth = 0;
        let mut end = open;
        for (k, b) in bytes.iter().enumerate().skip(open) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k;
                        break;
                    }
                }
                _ => {}
            }
        }
        let blanked: String = out[start..=end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(start..=end, &blanked);
        from = end;
    }
    out
}

struct Use {
    public: bool,
    tree: String,
    span: (usize, usize),
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn word_at(code: &str, i: usize, w: &str) -> bool {
    code[i..].starts_with(w)
        && (i == 0 || !code[..i].ends_with(is_ident))
        && !code[i + w.len()..].starts_with(is_ident)
}

/// Every `use …;` statement: whether it is `pub`/`pub(…)`, its tree text.
fn uses(code: &str) -> Vec<Use> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = code[i..].find("use") {
        let at = i + p;
        i = at + 3;
        if !word_at(code, at, "use") {
            continue;
        }
        let Some(end) = code[at..].find(';').map(|e| at + e) else {
            break;
        };
        let before = code[..at].trim_end();
        let public = (before.ends_with("pub") && word_at(before, before.len() - 3, "pub"))
            || (before.ends_with(')')
                && before
                    .rfind("pub(")
                    .is_some_and(|k| !before[k..].contains('\n') && word_at(before, k, "pub")));
        out.push(Use {
            public,
            tree: code[at + 3..end]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(""),
            span: (at, end),
        });
        i = end;
    }
    out
}

/// `a::{b, c::{d as e}}` -> [(["a","b"], "b"), (["a","c","d"], "e")].
fn expand_tree(tree: &str) -> Vec<(Vec<String>, String)> {
    fn go(prefix: &[String], t: &str, out: &mut Vec<(Vec<String>, String)>) {
        let t = t.trim_start_matches("::");
        if let Some(open) = t.find('{') {
            let head: Vec<String> = t[..open]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let mut p = prefix.to_vec();
            p.extend(head);
            let inner = &t[open + 1..t.rfind('}').unwrap_or(t.len())];
            let mut depth = 0;
            let mut start = 0;
            for (k, ch) in inner.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        go(&p, &inner[start..k], out);
                        start = k + 1;
                    }
                    _ => {}
                }
            }
            go(&p, &inner[start..], out);
        } else if !t.is_empty() {
            let (path, alias) = match t.split_once("as") {
                Some((p, a)) if !a.is_empty() && !p.ends_with("::") && !p.is_empty() => {
                    (p, Some(a.to_string()))
                }
                _ => (t, None),
            };
            let mut p = prefix.to_vec();
            p.extend(path.split("::").map(String::from));
            if p.last().map(String::as_str) == Some("self") {
                p.pop();
            }
            let name = alias.unwrap_or_else(|| p.last().cloned().unwrap_or_default());
            out.push((p, name));
        }
    }
    let mut out = Vec::new();
    go(&[], tree, &mut out);
    out
}

fn used_outside(code: &str, name: &str, spans: &[(usize, usize)]) -> bool {
    let mut i = 0;
    while let Some(p) = code[i..].find(name) {
        let at = i + p;
        i = at + name.len().max(1);
        let declared = code[..at].trim_end().ends_with("mod")
            && word_at(code, code[..at].trim_end().len() - 3, "mod");
        if word_at(code, at, name) && !declared && !spans.iter().any(|(s, e)| at >= *s && at <= *e)
        {
            return true;
        }
    }
    false
}

/// Paths `a::b::c` in code outside `use` statements, with their position.
fn code_paths(code: &str, spans: &[(usize, usize)]) -> Vec<(Vec<String>, usize)> {
    let mut out = Vec::new();
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if is_ident(c) && (i == 0 || !(is_ident(b[i - 1] as char) || b[i - 1] == b':')) {
            let start = i;
            let mut segs = Vec::new();
            let mut j = i;
            loop {
                let s = j;
                while j < b.len() && is_ident(b[j] as char) {
                    j += 1;
                }
                segs.push(code[s..j].to_string());
                if code[j..].starts_with("::") && code[j + 2..].starts_with(is_ident) {
                    j += 2;
                } else {
                    break;
                }
            }
            if segs.len() > 1 && !spans.iter().any(|(s, e)| start >= *s && start <= *e) {
                out.push((segs, start));
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn line_of(code: &str, pos: usize) -> usize {
    code[..pos].matches('\n').count() + 1
}

/// The module a path names (or defines the item it names), or `None` for
/// paths outside the crate.
fn resolve(
    from: &ModPath,
    path: &[String],
    mods: &BTreeSet<ModPath>,
    reexports: &BTreeMap<(ModPath, String), ModPath>,
) -> Option<ModPath> {
    let mut segs = path.iter().peekable();
    let first = segs.peek()?.as_str();
    let mut cur: ModPath = match first {
        "crate" => {
            segs.next();
            Vec::new()
        }
        "self" => {
            segs.next();
            from.clone()
        }
        "super" => {
            let mut m = from.clone();
            while segs.peek().map(|s| s.as_str()) == Some("super") {
                segs.next();
                m.pop();
            }
            m
        }
        child => {
            let mut m = from.clone();
            m.push(child.to_string());
            if !mods.contains(&m) {
                return None;
            }
            from.clone()
        }
    };
    let mut hops = 0;
    for s in segs {
        let mut next = cur.clone();
        next.push(s.clone());
        if mods.contains(&next) {
            cur = next;
        } else if let Some(t) = reexports.get(&(cur.clone(), s.clone())) {
            hops += 1;
            if hops > 8 {
                break;
            }
            cur = t.clone();
        } else {
            break;
        }
    }
    Some(cur)
}
