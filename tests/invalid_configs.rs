//! The corpus in tests/invalid: every config there must be rejected by `check` and `apply` with
//! exit status 2 and the expected message, and leave the system exactly as it was.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::system;

/// Minimum size of the corpus.
const MIN_CASES: usize = 40;

struct Case {
    name: String,
    /// Config text with `@FILES@` replaced; bytes, because one case is not UTF-8.
    text: Vec<u8>,
    /// Fragment the error output must contain, with `@FILES@` replaced.
    expect: String,
    /// Why the check for this case is not built yet.
    pending: Option<String>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid")
}

fn replace_bytes(text: &[u8], from: &str, to: &str) -> Vec<u8> {
    let from = from.as_bytes();
    let mut result = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.windows(from.len()).position(|window| window == from) {
        result.extend_from_slice(&rest[..at]);
        result.extend_from_slice(to.as_bytes());
        rest = &rest[at + from.len()..];
    }
    result.extend_from_slice(rest);
    result
}

fn load_corpus() -> Vec<Case> {
    let files_dir = corpus_dir().join("files").display().to_string();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("read tests/invalid")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let raw = std::fs::read(&path).expect("read case");
            let mut lines = raw.split(|&b| b == b'\n');
            let first = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
            let expect = first
                .strip_prefix("# expect: ")
                .unwrap_or_else(|| panic!("{name}: first line must be `# expect: FRAGMENT`"))
                .replace("@FILES@", &files_dir);
            let second = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
            let pending = second.strip_prefix("# pending: ").map(str::to_owned);
            Case {
                name,
                text: replace_bytes(&raw, "@FILES@", &files_dir),
                expect,
                pending,
            }
        })
        .collect()
}

fn run(config: &Path, args: &[&str]) -> Output {
    let output = Command::new(support::netnsctl_bin())
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .expect("run netnsctl");
    eprintln!(
        "$ netnsctl {} -c {}\n[status {:?}]\n{}{}",
        args.join(" "),
        config.display(),
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Returns why `output` is not a rejection with `expect` in it, or `None` when it is.
fn rejection_problem(output: &Output, expect: &str) -> Option<String> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() != Some(2) {
        return Some(format!(
            "exit status {:?}, expected 2",
            output.status.code()
        ));
    }
    if !stderr.contains(expect) {
        return Some(format!("message lacks {expect:?}: {stderr}"));
    }
    None
}

/// Moves the errors of `check --json` into stderr, one a line, where [`rejection_problem`]
/// looks. Output that is not the expected JSON object is kept as it is, so the check fails.
fn json_errors_as_stderr(output: Output) -> Output {
    let Ok(report) = serde_json::from_slice::<serde_json::Value>(&output.stdout) else {
        return output;
    };
    if report["valid"] != false {
        return output;
    }
    let errors: Vec<&str> = report["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|error| error.as_str())
        .collect();
    Output {
        stderr: errors.join("\n").into_bytes(),
        ..output
    }
}

#[test]
fn corpus_has_enough_cases() {
    let cases = load_corpus();
    assert!(
        cases.len() >= MIN_CASES,
        "only {} invalid configs",
        cases.len()
    );
}

#[test]
fn invalid_configs_rejected_without_changes() {
    if !support::require_root("invalid_configs_rejected_without_changes") {
        return;
    }
    let cases = load_corpus();
    let dir = tempfile::tempdir().expect("temporary directory");
    let before = system::snapshot();
    let mut problems = Vec::new();
    let mut pending = Vec::new();
    let mut rejected = 0;

    for case in &cases {
        let config = dir.path().join(format!("{}.toml", case.name));
        std::fs::write(&config, &case.text).expect("write case");
        let expect = case
            .expect
            .replace("@CONFIG@", &config.display().to_string());

        let mut case_problems = Vec::new();
        // A pending case may be accepted, so it never reaches `apply`.
        let commands: &[&[&str]] = if case.pending.is_some() {
            &[&["check"], &["check", "--json"]]
        } else {
            &[&["check"], &["check", "--json"], &["apply"]]
        };
        for args in commands {
            let output = run(&config, args);
            let output = if args.contains(&"--json") {
                json_errors_as_stderr(output)
            } else {
                output
            };
            if let Some(problem) = rejection_problem(&output, &expect) {
                case_problems.push(format!("{}: `{}`: {problem}", case.name, args.join(" ")));
            }
            let after = system::snapshot();
            system::assert_same(
                &before,
                &after,
                &format!("{}: `{}`", case.name, args.join(" ")),
            );
        }

        match (&case.pending, case_problems.is_empty()) {
            (None, true) => rejected += 1,
            (None, false) => problems.extend(case_problems),
            (Some(reason), false) => pending.push(format!("{}: {reason}", case.name)),
            (Some(_), true) => problems.push(format!(
                "{}: passes now; remove its `# pending:` line",
                case.name
            )),
        }
    }

    for case in &pending {
        println!("PENDING {case}");
    }
    println!(
        "{rejected} invalid configs rejected, {} pending",
        pending.len()
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn endless_config_file_rejected() {
    if !support::require_root("endless_config_file_rejected") {
        return;
    }
    for args in [&["check"][..], &["apply"][..]] {
        let output = run(Path::new("/dev/zero"), args);
        let problem = rejection_problem(&output, "/dev/zero: config file larger than 16 MiB");
        assert_eq!(problem, None, "`{}`", args.join(" "));
    }
}
