//! `confab tune` end to end on a small seeded workload.

use crate::confab;

#[test]
fn tune_prints_a_table_a_recommendation_and_writes_its_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (plot, csv, json) = (
        dir.path().join("plot.svg"),
        dir.path().join("out.csv"),
        dir.path().join("out.json"),
    );
    let out = confab()
        .args([
            "tune",
            "--messages",
            "3000",
            "--users",
            "40",
            "--chats",
            "60",
            "--duration",
            "1h",
        ])
        .args([
            "--timeouts",
            "500ms,2s",
            "--sizes",
            "10,50",
            "--ages",
            "10s",
            "--p99-budget",
            "5s",
        ])
        .arg("--plot")
        .arg(&plot)
        .arg("--csv")
        .arg(&csv)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run confab tune");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("recommended for p99 <= 5s"), "{stdout}");
    assert!(stdout.contains("seed: from_user+chat_id"), "{stdout}");
    let plot = std::fs::read_to_string(&plot).expect("plot");
    assert!(plot.starts_with("<svg") && plot.len() > 1_000);
    // 2 keys x 2 timeouts x 2 sizes x 1 age, plus the seed and the no-grouping rows.
    assert_eq!(
        std::fs::read_to_string(&csv).expect("csv").lines().count(),
        1 + 10
    );
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid json");
    assert_eq!(rows.as_array().map(Vec::len), Some(10));
}

#[test]
fn tune_refuses_an_impossible_workload_with_the_parameter() {
    let out = confab()
        .args(["tune", "--users", "1"])
        .output()
        .expect("run confab tune");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("users"));
}
