//! The harness's numbers checked against counts computed here, independently of the operator.

use std::collections::HashMap;
use std::sync::Arc;

use confab_pipeline::chat::{iso_from_ms, timeuuid_from_ms};
use confab_pipeline::{ChatKey, ChatMessage, WindowPolicy};
use confab_tune::report::{csv, svg, table};
use confab_tune::{
    evaluate, evaluate_all, generate, pareto_frontier_p50, recommend, recommend_within, Budget,
    Candidate, Grid, LeadingEdge, Prices, WorkloadSpec,
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

/// The percentile `evaluate` reports: the value at rank ceil(p n) of the sorted delays.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// What a leading edge of `gap_ms`, equal to the inactivity timeout, does when no size or age
/// limit is reached, counted here without the operator: each key's messages fall into runs, each
/// message within `gap_ms` of the one before; a run's first message is written alone at once,
/// and the rest of the run is one group written `gap_ms` after its last message and delivered
/// `lateness_ms` later. Returns the writes, the leading messages and the sorted delays.
fn leading_edge_by_hand(
    messages: &[ChatMessage],
    key: ChatKey,
    gap_ms: u64,
    lateness_ms: u64,
) -> (u64, u64, Vec<u64>) {
    use confab_pipeline::Aggregatable;
    let mut runs: HashMap<String, Vec<Vec<u64>>> = HashMap::new();
    for m in messages {
        let t = m.event_time_ms();
        let key_runs = runs.entry(key.key(m).to_string()).or_default();
        match key_runs.last_mut() {
            Some(run) if t < run[run.len() - 1] + gap_ms => run.push(t),
            _ => key_runs.push(vec![t]),
        }
    }
    let (mut writes, mut leaders, mut delays) = (0, 0, Vec::new());
    for run in runs.values().flatten() {
        writes += 1;
        leaders += 1;
        delays.push(0);
        if run.len() > 1 {
            writes += 1;
            let delivered = run[run.len() - 1] + gap_ms + lateness_ms;
            delays.extend(run[1..].iter().map(|t| delivered - t));
        }
    }
    delays.sort_unstable();
    (writes, leaders, delays)
}

#[test]
fn a_leading_edge_writes_and_delays_what_a_count_by_hand_says() {
    let messages = workload();
    for (key, gap) in [
        (ChatKey::Chat, 5_000),
        (ChatKey::Chat, 1_500),
        (ChatKey::ChatAndSender, 5_000),
    ] {
        let policy = WindowPolicy {
            inactivity_timeout_ms: gap,
            max_messages: usize::MAX / 2,
            max_bytes: usize::MAX / 2,
            max_age_ms: u64::MAX / 8,
            leading_edge_idle_ms: gap,
        };
        let candidate = Candidate {
            name: "t".into(),
            key,
            policy,
        };
        let outcome = evaluate(&messages, &candidate, &Prices::default(), 500);
        let (writes, leaders, delays) = leading_edge_by_hand(&messages, key, gap, 500);
        let case = format!("{key:?}, lead {gap}");
        assert_eq!(outcome.writes, writes, "{case}");
        assert_eq!(
            outcome.completions.get("leading_edge"),
            Some(&leaders),
            "{case}"
        );
        assert!(
            leaders > 100 && leaders < writes,
            "{case}: {leaders} of {writes}"
        );
        assert_eq!(delays.len(), messages.len());
        assert_eq!(
            (
                outcome.delay_p50_ms,
                outcome.delay_p90_ms,
                outcome.delay_p95_ms,
                outcome.delay_p99_ms,
                outcome.delay_max_ms
            ),
            (
                percentile(&delays, 0.50),
                percentile(&delays, 0.90),
                percentile(&delays, 0.95),
                percentile(&delays, 0.99),
                delays[delays.len() - 1]
            ),
            "{case}"
        );
        // The same policy without the leading edge writes each run as one group, later.
        let without = evaluate(
            &messages,
            &Candidate {
                policy: WindowPolicy {
                    leading_edge_idle_ms: 0,
                    ..policy
                },
                ..candidate
            },
            &Prices::default(),
            500,
        );
        let runs = leaders;
        assert_eq!(without.writes, runs, "{case}: one group per run");
        assert!(without.delay_p50_ms > outcome.delay_p50_ms, "{case}");
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
    let plot = svg(&outcomes, Some(best), baseline, budget).expect("plot");
    assert!(
        plot.starts_with("<svg") && plot.contains("seed (Camel)") && plot.contains("recommended")
    );
    assert!(plot.matches("<circle").count() >= outcomes.len());
    // Round ticks: every tick label on both axes is a whole number or has at most two decimals,
    // never a figure like $20.06 from dividing the range in five.
    let labels: Vec<&str> = plot
        .split("</text>")
        .filter_map(|part| part.rsplit('>').next())
        .map(str::trim)
        .filter(|t| {
            (t.starts_with('$') && !t.contains(' '))
                || (t.ends_with(" s") && t.split(' ').count() == 2)
        })
        .collect();
    assert!(labels.len() >= 8, "{labels:?}");
    for label in &labels {
        let number: f64 = label
            .trim_start_matches('$')
            .trim_end_matches(" s")
            .parse()
            .unwrap_or_else(|_| panic!("tick {label:?}"));
        let steps = number * 4.0;
        assert!(
            (steps - steps.round()).abs() < 1e-9 || (number * 10.0).fract().abs() < 1e-9,
            "{label}"
        );
    }
    assert!(
        plot.contains("Pareto frontier, no leading edge"),
        "a legend"
    );
    assert!(plot.contains("p99 budget 4s"));
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

    // The default grid tries leading edges too; the best with and without one are each the
    // cheapest of their kind within the budgets, and the overall recommendation is one of them.
    let led = |o: &confab_tune::Outcome| o.candidate.policy.leading_edge_idle_ms != 0;
    assert!(outcomes.iter().any(led) && outcomes.iter().any(|o| !led(o)));
    let budgets = Budget {
        p99_ms: budget,
        p50_ms: 3_000,
    };
    let with = recommend_within(&outcomes, budgets, LeadingEdge::With);
    let without = recommend_within(&outcomes, budgets, LeadingEdge::Without);
    let either = recommend_within(&outcomes, budgets, LeadingEdge::Either).expect("fits");
    assert!(Some(either) == with || Some(either) == without);
    for (index, kind) in [(with, true), (without, false)] {
        let Some(i) = index else { continue };
        assert_eq!(led(&outcomes[i]), kind);
        for o in outcomes.iter().filter(|o| led(o) == kind) {
            if o.delay_p99_ms <= budgets.p99_ms && o.delay_p50_ms <= budgets.p50_ms {
                assert!(outcomes[i].cost_per_month <= o.cost_per_month);
            }
        }
    }
    let p50_front = pareto_frontier_p50(&outcomes);
    for (a, on) in outcomes.iter().zip(&p50_front) {
        let dominated = outcomes.iter().any(|b| {
            b.cost_per_month <= a.cost_per_month
                && b.delay_p50_ms <= a.delay_p50_ms
                && (b.cost_per_month < a.cost_per_month || b.delay_p50_ms < a.delay_p50_ms)
        });
        assert_eq!(*on, !dominated, "{}", a.candidate.name);
    }
    assert!(
        plot.to_ascii_lowercase().contains("#ee8800"),
        "leading-edge policies are drawn in orange"
    );
    let header = csv(&outcomes, Some(best), baseline);
    let header = header.lines().next().unwrap_or_default();
    assert!(header.contains(",leading_edge_idle_ms,") && header.contains(",delay_p90_ms,"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Regression: policies whose age limit never fires on the traffic printed the same figures once
/// per age, each copy starred as its own Pareto point.
#[test]
fn policies_whose_age_never_fires_print_one_row_starred_once() {
    let messages = workload();
    let grid = Grid {
        inactivity_timeouts_ms: vec![500, 3_000],
        max_messages: vec![10, 100],
        // No group lives an hour or a day: three ages, one result.
        max_ages_ms: vec![10_000, 3_600_000, 86_400_000],
        leading_edges_ms: vec![0],
        ..Grid::default()
    };
    let candidates = grid.candidates();
    let outcomes = evaluate_all(&messages, &candidates, &Prices::default(), 500, 2, &|_| {});
    let groups = confab_tune::distinct_results(&outcomes);
    assert!(
        groups.len() < outcomes.len(),
        "some policies must give the same result"
    );
    assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), outcomes.len());
    for group in &groups {
        let first = &outcomes[group[0]];
        for &i in group {
            let o = &outcomes[i];
            assert_eq!(
                (o.writes, o.delay_p50_ms, o.delay_p99_ms, o.delay_max_ms),
                (
                    first.writes,
                    first.delay_p50_ms,
                    first.delay_p99_ms,
                    first.delay_max_ms
                )
            );
        }
    }

    let printed = table(&outcomes, None, None);
    let lines: Vec<&str> = printed.lines().collect();
    // Header, then rows and their "= policy" lines, then the legend.
    let body = &lines[1..lines.len() - 1];
    let rows: Vec<&str> = body
        .iter()
        .copied()
        .filter(|l| !l.trim_start().starts_with("= "))
        .collect();
    assert_eq!(rows.len(), groups.len(), "{printed}");
    assert_eq!(
        body.len(),
        outcomes.len(),
        "every policy is named once: {printed}"
    );
    for candidate in &candidates {
        let short: String = candidate.name.chars().take(50).collect();
        assert_eq!(
            printed.matches(short.as_str()).count(),
            1,
            "{} in {printed}",
            candidate.name
        );
    }
    // A point on the frontier is starred once: no two starred rows share cost and p99.
    let starred: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r[..4].contains('*'))
        .map(|r| {
            let cols: Vec<&str> = r.split_whitespace().collect();
            let n = cols.len();
            (cols[n - 8].to_owned(), cols[n - 4].to_owned())
        })
        .collect();
    assert!(!starred.is_empty(), "{printed}");
    let mut unique = starred.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), starred.len(), "{printed}");
    assert!(lines[lines.len() - 1].contains(&format!(
        "{} policies, {} distinct results",
        outcomes.len(),
        groups.len()
    )));
}
