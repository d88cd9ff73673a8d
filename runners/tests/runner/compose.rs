//! docker-compose.yml: valid for docker-compose (no Docker engine runs here, so `config` is as
//! far as it can be checked), and every environment variable it gives confab is one confab
//! reads; a misspelt one would be silently ignored in a container.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::{confab, repo_root};

/// The `environment:` entries of the `confab` service (the file's own two-space indentation).
fn confab_environment(compose: &str) -> Vec<String> {
    let mut in_service = false;
    let mut in_environment = false;
    let mut names = Vec::new();
    for line in compose.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if indent == 2 {
            in_service = text == "confab:";
            in_environment = false;
        } else if in_service && indent == 4 {
            in_environment = text == "environment:";
        } else if in_service && in_environment && indent == 6 {
            let name = text.split(':').next().unwrap_or_default().trim();
            names.push(name.to_owned());
        }
    }
    names
}

/// Variables confab reads: its flags' `[env: NAME=...]` in `confab up --help`, and the
/// connectors' defaults (`env_or("NAME", ...)`, `env::var("NAME")`) in the library sources.
fn variables_confab_reads() -> BTreeSet<String> {
    let out = confab()
        .args(["up", "--help"])
        .output()
        .expect("confab up --help");
    let help = String::from_utf8_lossy(&out.stdout);
    let mut names: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_owned)
        .collect();
    let mut files = Vec::new();
    for dir in ["connectors/src", "services", "pipeline/src"] {
        collect_rust_files(&repo_root().join(dir), &mut files);
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for marker in ["env_or(\"", "env::var(\""] {
            for rest in text.split(marker).skip(1) {
                if let Some(name) = rest.split('"').next() {
                    names.insert(name.to_owned());
                }
            }
        }
    }
    // tracing-subscriber's EnvFilter::try_from_default_env in main.rs.
    names.insert("RUST_LOG".to_owned());
    names
}

fn collect_rust_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && !path.ends_with("tests") {
            collect_rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn every_variable_the_compose_file_gives_confab_is_one_it_reads() {
    let compose = std::fs::read_to_string(repo_root().join("docker-compose.yml"))
        .expect("docker-compose.yml");
    let set = confab_environment(&compose);
    assert!(
        set.len() >= 8 && set.contains(&"DATABASE_URL".to_owned()),
        "the confab service's environment was not found: {set:?}"
    );
    let read = variables_confab_reads();
    let unread: Vec<&String> = set.iter().filter(|name| !read.contains(*name)).collect();
    assert!(
        unread.is_empty(),
        "docker-compose.yml sets {unread:?} for confab, which reads none of them (it reads {read:?})"
    );
}

#[test]
fn docker_compose_accepts_the_file() {
    let Ok(out) = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config", "--quiet"])
        .current_dir(repo_root())
        .output()
    else {
        panic!("docker-compose is not installed: apt-get install -y docker-compose (scripts/test does)");
    };
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
