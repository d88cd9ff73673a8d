//! Every configuration file in the repo parses and passes the checks; bad ones are refused with
//! a message naming the key and the fix.

use crate::{confab, repo_root};

#[test]
fn every_example_configuration_parses_and_prints() {
    let dir = repo_root().join("runners/configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("runners/configs") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = confab()
                .args(["aggregate", "--print-config", "--config"])
                .arg(&path)
                .output()
                .expect("run confab");
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let printed = String::from_utf8_lossy(&out.stdout);
            assert!(
                printed.contains("[source]") && printed.contains("[[sinks]]"),
                "{printed}"
            );
            seen += 1;
        }
    }
    assert!(seen >= 4, "found {seen} example configurations");
}

#[test]
fn bad_configurations_are_refused_with_the_key_and_the_fix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        ("bogus = 1\n", "unknown field `bogus`"),
        (
            "[window]\nmax_messages = 0\n",
            "`max_messages` must be greater than 0",
        ),
        (
            "[window]\ninactivity_timeout_ms = 20000\nmax_age_ms = 10000\n",
            "raise max_age_ms",
        ),
        (
            "[window]\nleading_edge_idle_ms = 1000\n",
            "`leading_edge_idle_ms` (1000) must be 0 (off) or at least `inactivity_timeout_ms`",
        ),
        ("sinks = []\n", "add at least one [[sinks]]"),
        (
            "[[sinks]]\ntype = \"carrier-pigeon\"\n",
            "unknown variant `carrier-pigeon`",
        ),
        ("[runtime]\nworkers = 0\n", "workers = 0: use 1 to 256"),
        ("key = \"sender\"\n", "unknown variant `sender`"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).expect("write config");
        let out = confab()
            .args(["aggregate", "--print-config", "--config"])
            .arg(&path)
            .output()
            .expect("run confab");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} was accepted");
        assert!(
            stderr.contains(expected),
            "{text:?}: expected {expected:?} in {stderr}"
        );
    }
}

#[test]
fn flags_override_the_file() {
    let out = confab()
        .args([
            "aggregate",
            "--print-config",
            "--workers",
            "3",
            "--key",
            "chat_and_sender",
            "--inactivity-timeout",
            "1500ms",
            "--max-age",
            "15s",
            "--leading-edge",
            "20s",
        ])
        .output()
        .expect("run confab");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("workers = 3"), "{printed}");
    assert!(printed.contains("key = \"chat_and_sender\""), "{printed}");
    assert!(
        printed.contains("inactivity_timeout_ms = 1500"),
        "{printed}"
    );
    assert!(printed.contains("max_age_ms = 15000"), "{printed}");
    assert!(
        printed.contains("leading_edge_idle_ms = 20000"),
        "{printed}"
    );
}
