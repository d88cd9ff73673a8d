//! The harness's numbers checked against counts computed here, independently of the operator.

use std::collections::HashMap;
use std::sync::Arc;

use confab_pipeline::record::{iso_from_ms, timeuuid_from_ms};
use confab_pipeline::{ChatKey, ChatMessage, WindowPolicy};
use confab_tune::report::{csv, svg, table};
use confab_tune::{
    evaluate, evaluate_all, generate, recommend, Candidate, Grid, Prices, WorkloadSpec,
};

fn workload() -> Arc<Vec<ChatMessage>> {
    let spec = WorkloadSpec {
        messages: 6_000,
        users: 60,
        chats: 80,
        duration_ms: 3_600_000,
        ..WorkloadSpec::default()
    };
    Arc::new(generate(&spec).expect("valid spec"))
}

fn never_times_out(size: usize) -> WindowPolicy {
    WindowPolicy {
        inactivity_timeout_ms: u64::MAX / 8,
        max_age_ms: u64::MAX / 8,
        max_messages: size,
        max_bytes: usize::MAX / 2,
        leading_edge_idle_ms: 0,
    }
}

fn ceil_div_by_key(messages: &[ChatMessage], key: ChatKey, size: usize) -> u64 {
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for m in messages {
        *per_key.entry(key.key(m).to_string()).or_default() += 1;
    }
    per_key.values().map(|n| n.div_ceil(size) as u64).sum()
}

#[test]
fn without_timeouts_writes_are_the_ceiling_of_messages_over_size_per_key() {
    let messages = workload();
    for (key, size) in [
        (ChatKey::Chat, 10),
        (ChatKey::Chat, 7),
        (ChatKey::ChatAndSender, 10),
    ] {
        let candidate = Candidate {
            name: "t".into(),
            key,
            policy: never_times_out(size),
        };
        let outcome = evaluate(&messages, &candidate, &Prices::default(), 0);
        assert_eq!(outcome.messages, messages.len() as u64);
        assert_eq!(
            outcome.writes,
            ceil_div_by_key(&messages, key, size),
            "{key:?} size {size}"
        );
        assert!(
            (outcome.writes_per_message - outcome.writes as f64 / messages.len() as f64).abs()
                < 1e-12
        );
    }
}

#[test]
fn one_write_per_message_has_no_delay_and_costs_what_the_price_list_says() {
    let messages = workload();
    let prices = Prices {
        write_per_100k: 0.18,
        read_per_100k: 0.06,
        listeners_per_chat: 2.0,
    };
    let outcome = evaluate(&messages, &Candidate::per_message(), &prices, 500);
    let n = messages.len() as f64;
    assert_eq!(outcome.writes, messages.len() as u64);
    assert_eq!(outcome.reads, 2 * messages.len() as u64);
    assert_eq!(
        (
            outcome.delay_p50_ms,
            outcome.delay_p99_ms,
            outcome.delay_max_ms
        ),
        (0, 0, 0)
    );
    let span = (confab_pipeline::Aggregatable::event_time_ms(&messages[messages.len() - 1])
        - confab_pipeline::Aggregatable::event_time_ms(&messages[0])) as f64;
    let expected = 30.0 * 86_400_000.0 / span * (n / 1e5 * 0.18 + 2.0 * n / 1e5 * 0.06);
    assert!(
        (outcome.cost_per_month - expected).abs() < 1e-6,
        "{} vs {expected}",
        outcome.cost_per_month
    );
}

#[test]
fn delays_are_measured_from_each_message_to_its_groups_delivery() {
    let message = |i: u64, ms: u64| ChatMessage {
        message_id: format!("m{i}").into(),
        chat_id: "c".into(),
        from_user: "a".into(),
        to_user: "b".into(),
        body: "hi".into(),
        time: timeuuid_from_ms(ms, i as u16, [0; 6]),
        time_iso: iso_from_ms(ms).into(),
    };
    let base = 1_700_000_000_000;
    let messages = Arc::new(vec![
        message(0, base),
        message(1, base + 1_000),
        message(2, base + 2_000),
    ]);
    let policy = WindowPolicy {
        inactivity_timeout_ms: 3_000,
        max_age_ms: 60_000,
        max_messages: 100,
        max_bytes: 1 << 20,
        leading_edge_idle_ms: 0,
    };
    let outcome = evaluate(
        &messages,
        &Candidate {
            name: "t".into(),
            key: ChatKey::Chat,
            policy,
        },
        &Prices::default(),
        250,
    );
    // One group, complete at 2 s + 3 s, delivered 250 ms later.
    assert_eq!(outcome.writes, 1);
    assert_eq!(outcome.delay_max_ms, 5_250);
    assert_eq!(outcome.delay_p50_ms, 4_250);
    assert_eq!(outcome.completions.get("inactivity"), Some(&1));
}

#[test]
fn the_grid_run_recommends_the_cheapest_policy_within_budget_and_plots_it() {
    let messages = workload();
    let grid = Grid {
        inactivity_timeouts_ms: vec![500, 3_000],
        max_messages: vec![10, 100],
        max_ages_ms: vec![10_000],
        ..Grid::default()
    };
    let candidates = grid.candidates();
    let progress = std::sync::atomic::AtomicUsize::new(0);
    let outcomes = evaluate_all(&messages, &candidates, &Prices::default(), 500, 2, &|n| {
        progress.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
    });
    assert_eq!(outcomes.len(), candidates.len());
    // Regression: a group closed by a record arriving after its deadline was stamped with that
    // record's time (minutes later on sparse traffic) instead of its deadline.
    for o in &outcomes {
        let bound = o.candidate.policy.max_age_ms.saturating_add(500);
        assert!(
            o.delay_max_ms <= bound,
            "{}: max delay {} over age + lateness {bound}",
            o.candidate.name,
            o.delay_max_ms
        );
    }
    assert_eq!(progress.into_inner(), candidates.len());
    let budget = 4_000;
    let best = recommend(&outcomes, budget).expect("some policy fits 4 s");
    for o in &outcomes {
        if o.delay_p99_ms <= budget {
            assert!(outcomes[best].cost_per_month <= o.cost_per_month);
        }
    }
    let baseline = outcomes
        .iter()
        .position(|o| o.candidate == Candidate::seed_baseline());
    assert!(baseline.is_some());
    let plot = svg(&outcomes, Some(best), baseline, budget);
    assert!(
        plot.starts_with("<svg") && plot.contains("seed (Camel)") && plot.contains("recommended")
    );
    assert!(plot.matches("<circle").count() >= outcomes.len());
    let dir = std::env::temp_dir().join(format!("confab-tune-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("plot.svg");
    std::fs::write(&path, &plot).expect("write plot");
    assert!(std::fs::metadata(&path).expect("plot file").len() > 1_000);
    assert_eq!(
        csv(&outcomes, Some(best), baseline).lines().count(),
        outcomes.len() + 1
    );
    assert!(table(&outcomes, Some(best), baseline).contains("R"));
    let _ = std::fs::remove_dir_all(dir);
}
