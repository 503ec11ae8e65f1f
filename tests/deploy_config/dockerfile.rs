//! Dockerfiles: a small instruction parser (continuations, comments, heredocs, quoting) and the
//! check that each image pins its bases, runs folio as a non-root user and has a health check.

use crate::docs::{deploy, files_under, rel};
use std::collections::BTreeSet;
use std::path::PathBuf;

pub struct Instr {
    pub keyword: String,
    pub args: String,
    pub line: usize,
}

/// Instructions of a Dockerfile: continuation lines joined, comments skipped, a heredoc body kept
/// in the arguments of its instruction.
pub fn instructions(text: &str) -> Vec<Instr> {
    let (mut out, mut lines) = (Vec::new(), text.lines().enumerate());
    while let Some((n, line)) = lines.next() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let mut full = t.to_string();
        while full.ends_with('\\') {
            full.pop();
            match lines
                .by_ref()
                .map(|(_, l)| l.trim())
                .find(|l| !l.starts_with('#'))
            {
                Some(next) => full = format!("{full} {next}"),
                None => break,
            }
        }
        if let Some(at) = full.find("<<") {
            let word = full[at + 2..]
                .trim_start_matches('-')
                .trim_matches(|c| c == '\'' || c == '"');
            let end: String = word
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !end.is_empty() && !full[at..].starts_with("<<<") {
                let body = lines
                    .by_ref()
                    .map(|(_, l)| l)
                    .take_while(|l| l.trim() != end);
                full = format!("{full}\n{}", body.collect::<Vec<_>>().join("\n"));
            }
        }
        let (kw, args) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        let (keyword, args) = (kw.to_ascii_uppercase(), args.trim().to_string());
        out.push(Instr {
            keyword,
            args,
            line: n + 1,
        });
    }
    out
}

/// Words of an instruction's arguments, honouring quotes and backslash escapes.
pub fn words(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut quote, mut chars) = (Vec::new(), String::new(), None, s.chars());
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => cur.extend(chars.next()),
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            (w, None) if w.is_whitespace() => {
                out.extend((!cur.is_empty()).then(|| std::mem::take(&mut cur)))
            }
            _ => cur.push(c),
        }
    }
    out.extend((!cur.is_empty()).then_some(cur));
    out
}

/// `ENV A=1 B=2` or the legacy `ENV A 1`.
pub fn env_pairs(args: &str) -> Vec<(String, String)> {
    let w = words(args);
    match w.first() {
        Some(first) if !first.contains('=') => vec![(first.clone(), w[1..].join(" "))],
        _ => w
            .iter()
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
    }
}

/// `deploy/**/Dockerfile*` (not the `.dockerignore` files), parsed.
pub fn dockerfiles() -> Vec<(String, Vec<Instr>)> {
    let mut files = Vec::new();
    let keep = |n: &str| n.starts_with("Dockerfile") && !n.ends_with(".dockerignore");
    files_under(&deploy(), &keep, &mut files);
    let read = |f: &PathBuf| std::fs::read_to_string(f).expect("Dockerfile readable");
    files
        .iter()
        .map(|f| (rel(f), instructions(&read(f))))
        .collect()
}

pub const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

#[test]
fn dockerfiles_pin_their_bases_and_run_folio_as_non_root() {
    for (file, instrs) in dockerfiles() {
        for i in &instrs {
            assert!(
                KEYWORDS.contains(&i.keyword.as_str()),
                "{file}:{}: unknown instruction {}",
                i.line,
                i.keyword
            );
        }
        let first_from = instrs
            .iter()
            .position(|i| i.keyword == "FROM")
            .expect("FROM");
        let globals: Vec<(String, String)> = instrs[..first_from]
            .iter()
            .filter(|i| i.keyword == "ARG")
            .filter_map(|i| {
                i.args
                    .split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let mut stages = BTreeSet::new();
        for i in instrs.iter().filter(|i| i.keyword == "FROM") {
            let w: Vec<String> = words(&i.args)
                .into_iter()
                .filter(|w| !w.starts_with("--"))
                .collect();
            let image = globals
                .iter()
                .fold(w[0].clone(), |s, (k, v)| s.replace(&format!("${{{k}}}"), v));
            if !stages.contains(&image) {
                let tag = image
                    .rsplit('/')
                    .next()
                    .and_then(|last| last.split_once(':'))
                    .map(|(_, t)| t);
                let tag = tag.unwrap_or_else(|| panic!("{file}:{}: {image} has no tag", i.line));
                assert!(
                    !tag.is_empty() && tag != "latest",
                    "{file}:{}: {image} is not pinned",
                    i.line
                );
            }
            stages.extend(w.get(2).cloned());
        }
        let last_from = instrs
            .iter()
            .rposition(|i| i.keyword == "FROM")
            .expect("FROM");
        let last = &instrs[last_from..];
        let one = |kw: &str| {
            last.iter()
                .rev()
                .find(|i| i.keyword == kw)
                .map(|i| i.args.clone())
        };
        let user = one("USER").unwrap_or_else(|| panic!("{file}: the runtime stage sets no USER"));
        assert!(
            !["root", "0", "0:0"].contains(&user.as_str()),
            "{file}: runs as {user}"
        );
        assert!(one("HEALTHCHECK").is_some(), "{file}: no HEALTHCHECK");
        assert!(
            one("ENTRYPOINT").is_some_and(|e| e.contains("folio")),
            "{file}: ENTRYPOINT is not folio"
        );
        let runtime_env = last
            .iter()
            .filter(|i| i.keyword == "ENV")
            .flat_map(|i| env_pairs(&i.args));
        assert!(
            runtime_env
                .map(|(k, _)| k)
                .any(|k| k == "FOLIO_RUNTIME_DIR"),
            "{file}: FOLIO_RUNTIME_DIR unset"
        );
        let builds: Vec<&Instr> = instrs
            .iter()
            .filter(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
            .collect();
        assert!(!builds.is_empty(), "{file}: builds nothing");
        for b in builds {
            let locked = b.args.contains("--locked");
            assert!(locked, "{file}:{}: cargo build without --locked", b.line);
        }
    }
}
