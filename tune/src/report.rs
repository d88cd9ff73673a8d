//! Reading the outcomes: the Pareto frontiers of cost against p99 and p50 delay, the
//! recommendation under delay budgets (with or without a leading edge), and the outputs
//! (terminal table, CSV, JSON, SVG plot).

use std::fmt::Write as _;

use crate::evaluate::Outcome;
use crate::grid::ms_text;

/// For each outcome, whether no other outcome is at least as cheap and at least as fast in p99
/// delay, and strictly better in one of the two.
pub fn pareto_frontier(outcomes: &[Outcome]) -> Vec<bool> {
    pareto_by(outcomes, |o| o.delay_p99_ms)
}

/// The same frontier for the median delay, where a leading edge shows: it writes a
/// conversation's first message at once, which the p99 (the slowest messages) does not see.
pub fn pareto_frontier_p50(outcomes: &[Outcome]) -> Vec<bool> {
    pareto_by(outcomes, |o| o.delay_p50_ms)
}

/// For each outcome, whether no other is at least as cheap and as fast by `delay`, and strictly
/// better in one of the two.
pub fn pareto_by(outcomes: &[Outcome], delay: impl Fn(&Outcome) -> u64) -> Vec<bool> {
    let all: Vec<&Outcome> = outcomes.iter().collect();
    frontier_of(&all, delay)
}

fn frontier_of(outcomes: &[&Outcome], delay: impl Fn(&Outcome) -> u64) -> Vec<bool> {
    outcomes
        .iter()
        .map(|a| {
            !outcomes.iter().any(|b| {
                b.cost_per_month <= a.cost_per_month
                    && delay(b) <= delay(a)
                    && (b.cost_per_month < a.cost_per_month || delay(b) < delay(a))
            })
        })
        .collect()
}

/// Whether `a` and `b` gave the same result: every count, the cost, every delay and the peaks.
/// A policy whose extra limit never fires on the traffic (an age no group reaches) gives the same
/// result as the one without it.
fn same_result(a: &Outcome, b: &Outcome) -> bool {
    a.writes == b.writes
        && a.reads == b.reads
        && a.cost_per_month.to_bits() == b.cost_per_month.to_bits()
        && a.delay_p50_ms == b.delay_p50_ms
        && a.delay_p90_ms == b.delay_p90_ms
        && a.delay_p95_ms == b.delay_p95_ms
        && a.delay_p99_ms == b.delay_p99_ms
        && a.delay_max_ms == b.delay_max_ms
        && a.max_writes_per_chat_second == b.max_writes_per_chat_second
        && a.peak_open_groups == b.peak_open_groups
        && a.peak_open_bytes == b.peak_open_bytes
}

/// The outcomes grouped by identical result ([`same_result`]): each group lists indices into
/// `outcomes`, in their order; the groups are in the order of their first outcome.
pub fn distinct_results(outcomes: &[Outcome]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|group| same_result(&outcomes[group[0]], o))
        {
            Some(group) => group.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups
}

/// What a recommendation must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Largest p99 delay (ms).
    pub p99_ms: u64,
    /// Largest p50 delay (ms); `u64::MAX` for none.
    pub p50_ms: u64,
}

/// Which policies a recommendation may choose from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadingEdge {
    /// Any policy.
    Either,
    /// Only policies with a leading edge.
    With,
    /// Only policies without one.
    Without,
}

impl LeadingEdge {
    fn admits(self, o: &Outcome) -> bool {
        let has = o.candidate.policy.leading_edge_idle_ms != 0;
        match self {
            Self::Either => true,
            Self::With => has,
            Self::Without => !has,
        }
    }
}

/// The cheapest outcome whose p99 delay fits `budget_ms` (the faster one on equal cost).
pub fn recommend(outcomes: &[Outcome], budget_ms: u64) -> Option<usize> {
    let budget = Budget {
        p99_ms: budget_ms,
        p50_ms: u64::MAX,
    };
    recommend_within(outcomes, budget, LeadingEdge::Either)
}

/// The cheapest outcome among those `which` admits whose delays fit `budget` (on equal cost, the
/// lower p99, then the lower p50).
pub fn recommend_within(outcomes: &[Outcome], budget: Budget, which: LeadingEdge) -> Option<usize> {
    outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            which.admits(o) && o.delay_p99_ms <= budget.p99_ms && o.delay_p50_ms <= budget.p50_ms
        })
        .min_by(|(_, a), (_, b)| {
            a.cost_per_month
                .total_cmp(&b.cost_per_month)
                .then(a.delay_p99_ms.cmp(&b.delay_p99_ms))
                .then(a.delay_p50_ms.cmp(&b.delay_p50_ms))
        })
        .map(|(i, _)| i)
}

/// Marks for one row: R recommended, B the seed's baseline, * on the cost/p99 Pareto frontier,
/// ^ on the cost/p50 one.
fn marks(
    i: usize,
    frontiers: (&[bool], &[bool]),
    recommended: Option<usize>,
    baseline: Option<usize>,
) -> String {
    let mut m = String::new();
    if recommended == Some(i) {
        m.push('R');
    }
    if baseline == Some(i) {
        m.push('B');
    }
    if frontiers.0.get(i).copied().unwrap_or(false) {
        m.push('*');
    }
    if frontiers.1.get(i).copied().unwrap_or(false) {
        m.push('^');
    }
    m
}

/// The table for the terminal: one row per distinct result, sorted by cost, marked, with the
/// other policies that gave the same result listed under it (`= ...`). The Pareto frontiers are
/// those of the distinct results, so a point on a frontier is starred once.
pub fn table(outcomes: &[Outcome], recommended: Option<usize>, baseline: Option<usize>) -> String {
    let groups = distinct_results(outcomes);
    let results: Vec<Outcome> = groups.iter().map(|g| outcomes[g[0]].clone()).collect();
    let (p99, p50) = (pareto_frontier(&results), pareto_frontier_p50(&results));
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by(|&a, &b| {
        results[a]
            .cost_per_month
            .total_cmp(&results[b].cost_per_month)
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<4} {:<58} {:>9} {:>10} {:>10} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>10}",
        "",
        "policy",
        "writes",
        "writes/msg",
        "$/month",
        "p50",
        "p90",
        "p95",
        "p99",
        "max",
        "docs/s/chat",
        "peak open"
    );
    for g in order {
        let group = &groups[g];
        // The row is named after the recommended or baseline policy when the group holds it.
        let named = [recommended, baseline]
            .into_iter()
            .flatten()
            .find(|i| group.contains(i))
            .unwrap_or(group[0]);
        let row_marks = {
            let mut m = String::new();
            if recommended.is_some_and(|r| group.contains(&r)) {
                m.push('R');
            }
            if baseline.is_some_and(|b| group.contains(&b)) {
                m.push('B');
            }
            m + &marks(g, (&p99, &p50), None, None)
        };
        let o = &outcomes[named];
        let _ = writeln!(
            out,
            "{:<4} {:<58} {:>9} {:>10.3} {:>10.2} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>10}",
            row_marks,
            truncate(&o.candidate.name, 58),
            o.writes,
            o.writes_per_message,
            o.cost_per_month,
            ms_text(o.delay_p50_ms),
            ms_text(o.delay_p90_ms),
            ms_text(o.delay_p95_ms),
            ms_text(o.delay_p99_ms),
            ms_text(o.delay_max_ms),
            o.max_writes_per_chat_second,
            o.peak_open_groups,
        );
        for &same in group.iter().filter(|&&i| i != named) {
            let _ = writeln!(out, "       = {}", outcomes[same].candidate.name);
        }
    }
    let _ = writeln!(
        out,
        "{} policies, {} distinct results. R = recommended, B = the seed's Camel policy, \
         * = on the cost/p99 Pareto frontier, ^ = on the cost/p50 one; \"= policy\": the same \
         result as the row above; \"lead T\": a leading edge of T",
        outcomes.len(),
        groups.len()
    );
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// The outcomes as CSV, one row per candidate, with a header.
pub fn csv(outcomes: &[Outcome], recommended: Option<usize>, baseline: Option<usize>) -> String {
    let (frontier, frontier_p50) = (pareto_frontier(outcomes), pareto_frontier_p50(outcomes));
    let mut out = String::from(
        "policy,key,inactivity_timeout_ms,max_messages,max_bytes,max_age_ms,leading_edge_idle_ms,messages,writes,writes_per_message,reads,reads_per_client,cost_per_month,delay_p50_ms,delay_p90_ms,delay_p95_ms,delay_p99_ms,delay_max_ms,max_writes_per_chat_second,peak_open_groups,peak_open_bytes,pareto,pareto_p50,recommended,baseline\n",
    );
    for (i, o) in outcomes.iter().enumerate() {
        let p = &o.candidate.policy;
        let _ = writeln!(
            out,
            "\"{}\",{},{},{},{},{},{},{},{},{:.6},{},{:.3},{:.4},{},{},{},{},{},{},{},{},{},{},{},{}",
            o.candidate.name.replace('"', "\"\""),
            o.candidate.key.as_str(),
            p.inactivity_timeout_ms,
            p.max_messages,
            p.max_bytes,
            p.max_age_ms,
            p.leading_edge_idle_ms,
            o.messages,
            o.writes,
            o.writes_per_message,
            o.reads,
            o.reads_per_client,
            o.cost_per_month,
            o.delay_p50_ms,
            o.delay_p90_ms,
            o.delay_p95_ms,
            o.delay_p99_ms,
            o.delay_max_ms,
            o.max_writes_per_chat_second,
            o.peak_open_groups,
            o.peak_open_bytes,
            frontier[i],
            frontier_p50[i],
            recommended == Some(i),
            baseline == Some(i),
        );
    }
    out
}

/// An SVG plot of monthly cost against delivery delay, in two panels: the median delay (where a
/// leading edge shows) and the p99 delay. Every candidate is a dot, orange with a leading edge
/// and grey without; each panel joins the Pareto frontier of the policies without a leading edge
/// (green) and with one (orange). The seed's baseline and the recommendation are labelled, the
/// p99 budget is a vertical line.
pub fn svg(
    outcomes: &[Outcome],
    recommended: Option<usize>,
    baseline: Option<usize>,
    budget_ms: u64,
) -> String {
    let (w, h) = (1200.0, 580.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">Firestore cost per month against delivery delay (orange: with a leading edge)</text>"#,
        w / 2.0
    );
    let max_y = outcomes
        .iter()
        .map(|o| o.cost_per_month)
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    let marks = Marks {
        recommended,
        baseline,
    };
    panel(
        &mut s,
        outcomes,
        Panel {
            left: 80.0,
            width: 500.0,
            height: h,
            max_y,
            delay: |o: &Outcome| o.delay_p50_ms,
            label: "p50",
            budget_ms: None,
        },
        marks,
    );
    panel(
        &mut s,
        outcomes,
        Panel {
            left: 680.0,
            width: 500.0,
            height: h,
            max_y,
            delay: |o: &Outcome| o.delay_p99_ms,
            label: "p99",
            budget_ms: Some(budget_ms),
        },
        marks,
    );
    s.push_str("</svg>\n");
    s
}

/// One panel of the plot: where it sits and which delay it shows.
struct Panel<F> {
    left: f64,
    width: f64,
    height: f64,
    max_y: f64,
    delay: F,
    label: &'static str,
    budget_ms: Option<u64>,
}

/// The rows to label in every panel.
#[derive(Clone, Copy)]
struct Marks {
    recommended: Option<usize>,
    baseline: Option<usize>,
}

fn panel<F: Fn(&Outcome) -> u64>(s: &mut String, outcomes: &[Outcome], p: Panel<F>, marks: Marks) {
    let (top, bottom) = (40.0, 60.0);
    let (left, right, h) = (p.left, p.left + p.width, p.height);
    let delay = &p.delay;
    let max_x = outcomes
        .iter()
        .map(delay)
        .max()
        .unwrap_or(1)
        .max(p.budget_ms.unwrap_or(0))
        .max(1) as f64
        * 1.05;
    let x = |ms: u64| left + (ms as f64 / max_x) * p.width;
    let y = |cost: f64| h - bottom - (cost / p.max_y) * (h - top - bottom);
    // Axes with five ticks each.
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{0}" x2="{right}" y2="{0}" stroke="#333"/>"##,
        h - bottom
    );
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#333"/>"##,
        h - bottom
    );
    for i in 0..=5 {
        let ms = (max_x / 5.0 * i as f64) as u64;
        let cost = p.max_y / 5.0 * i as f64;
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#333">{}</text>"##,
            x(ms),
            h - bottom + 18.0,
            ms_text(ms)
        );
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#333">${cost:.2}</text>"##,
            left - 6.0,
            y(cost) + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{} delay from message to delivered group</text>"#,
        left + p.width / 2.0,
        h - 15.0,
        p.label
    );
    let _ = writeln!(
        s,
        r#"<text x="{0}" y="{1}" text-anchor="middle" transform="rotate(-90 {0} {1})">$ per month</text>"#,
        left - 62.0,
        h / 2.0
    );
    if let Some(budget) = p.budget_ms {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{1}" stroke="#c60" stroke-dasharray="5,4"/><text x="{2:.1}" y="{3}" fill="#c60">p99 budget {4}</text>"##,
            x(budget),
            h - bottom,
            x(budget) + 4.0,
            top + 12.0,
            ms_text(budget)
        );
    }
    // The frontiers without and with a leading edge, each among its own policies, joined in
    // order of delay.
    let led = |o: &Outcome| o.candidate.policy.leading_edge_idle_ms != 0;
    for (with, colour) in [(false, "#2a7"), (true, "#e80")] {
        let group: Vec<&Outcome> = outcomes.iter().filter(|o| led(o) == with).collect();
        let frontier = frontier_of(&group, delay);
        let mut front: Vec<&Outcome> = group
            .iter()
            .zip(&frontier)
            .filter(|(_, f)| **f)
            .map(|(o, _)| *o)
            .collect();
        front.sort_by_key(|o| delay(o));
        if front.is_empty() {
            continue;
        }
        let points: Vec<String> = front
            .iter()
            .map(|o| format!("{:.1},{:.1}", x(delay(o)), y(o.cost_per_month)))
            .collect();
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"##,
            points.join(" ")
        );
    }
    for o in outcomes {
        let fill = if led(o) { "#e80" } else { "#99a" };
        let _ = writeln!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{fill}"><title>{}: {:.3} writes/msg, p50 {}, p99 {}</title></circle>"#,
            x(delay(o)),
            y(o.cost_per_month),
            escape(&o.candidate.name),
            o.writes_per_message,
            ms_text(o.delay_p50_ms),
            ms_text(o.delay_p99_ms)
        );
    }
    for (index, label, colour) in [
        (marks.baseline, "seed (Camel)", "#c22"),
        (marks.recommended, "recommended", "#06c"),
    ] {
        if let Some(o) = index.and_then(|i| outcomes.get(i)) {
            let (cx, cy) = (x(delay(o)), y(o.cost_per_month));
            let _ = writeln!(
                s,
                r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="7" fill="none" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}" fill="{colour}">{label}: ${:.2}, {} {}</text>"#,
                cx + 10.0,
                cy - 8.0,
                o.cost_per_month,
                p.label,
                ms_text(delay(o))
            );
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
