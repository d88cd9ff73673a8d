//! Reading the outcomes: the Pareto frontier of cost against p99 delay, the recommendation under a
//! delay budget, and the outputs (terminal table, CSV, JSON, SVG plot).

use std::fmt::Write as _;

use crate::evaluate::Outcome;
use crate::grid::ms_text;

/// For each outcome, whether no other outcome is at least as cheap and at least as fast, and
/// strictly better in one of the two.
pub fn pareto_frontier(outcomes: &[Outcome]) -> Vec<bool> {
    outcomes
        .iter()
        .map(|a| {
            !outcomes.iter().any(|b| {
                b.cost_per_month <= a.cost_per_month
                    && b.delay_p99_ms <= a.delay_p99_ms
                    && (b.cost_per_month < a.cost_per_month || b.delay_p99_ms < a.delay_p99_ms)
            })
        })
        .collect()
}

/// The cheapest outcome whose p99 delay fits `budget_ms` (the faster one on equal cost).
pub fn recommend(outcomes: &[Outcome], budget_ms: u64) -> Option<usize> {
    outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.delay_p99_ms <= budget_ms)
        .min_by(|(_, a), (_, b)| {
            a.cost_per_month
                .total_cmp(&b.cost_per_month)
                .then(a.delay_p99_ms.cmp(&b.delay_p99_ms))
        })
        .map(|(i, _)| i)
}

/// Marks for one row: R recommended, B the seed's baseline, * on the Pareto frontier.
fn marks(
    i: usize,
    frontier: &[bool],
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
    if frontier.get(i).copied().unwrap_or(false) {
        m.push('*');
    }
    m
}

/// The table for the terminal, sorted by cost, with the rows marked.
pub fn table(outcomes: &[Outcome], recommended: Option<usize>, baseline: Option<usize>) -> String {
    let frontier = pareto_frontier(outcomes);
    let mut order: Vec<usize> = (0..outcomes.len()).collect();
    order.sort_by(|&a, &b| {
        outcomes[a]
            .cost_per_month
            .total_cmp(&outcomes[b].cost_per_month)
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<3} {:<48} {:>9} {:>10} {:>10} {:>7} {:>7} {:>7} {:>7} {:>9} {:>10}",
        "",
        "policy",
        "writes",
        "writes/msg",
        "$/month",
        "p50",
        "p95",
        "p99",
        "max",
        "docs/s/chat",
        "peak open"
    );
    for i in order {
        let o = &outcomes[i];
        let _ = writeln!(
            out,
            "{:<3} {:<48} {:>9} {:>10.3} {:>10.2} {:>7} {:>7} {:>7} {:>7} {:>9} {:>10}",
            marks(i, &frontier, recommended, baseline),
            truncate(&o.candidate.name, 48),
            o.writes,
            o.writes_per_message,
            o.cost_per_month,
            ms_text(o.delay_p50_ms),
            ms_text(o.delay_p95_ms),
            ms_text(o.delay_p99_ms),
            ms_text(o.delay_max_ms),
            o.max_writes_per_chat_second,
            o.peak_open_groups,
        );
    }
    out.push_str(
        "R = recommended, B = the seed's Camel policy, * = on the cost/p99 Pareto frontier\n",
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
    let frontier = pareto_frontier(outcomes);
    let mut out = String::from(
        "policy,key,inactivity_timeout_ms,max_messages,max_bytes,max_age_ms,messages,writes,writes_per_message,reads,reads_per_client,cost_per_month,delay_p50_ms,delay_p95_ms,delay_p99_ms,delay_max_ms,max_writes_per_chat_second,peak_open_groups,peak_open_bytes,pareto,recommended,baseline\n",
    );
    for (i, o) in outcomes.iter().enumerate() {
        let p = &o.candidate.policy;
        let _ = writeln!(
            out,
            "\"{}\",{},{},{},{},{},{},{},{:.6},{},{:.3},{:.4},{},{},{},{},{},{},{},{},{},{}",
            o.candidate.name.replace('"', "\"\""),
            o.candidate.key.as_str(),
            p.inactivity_timeout_ms,
            p.max_messages,
            p.max_bytes,
            p.max_age_ms,
            o.messages,
            o.writes,
            o.writes_per_message,
            o.reads,
            o.reads_per_client,
            o.cost_per_month,
            o.delay_p50_ms,
            o.delay_p95_ms,
            o.delay_p99_ms,
            o.delay_max_ms,
            o.max_writes_per_chat_second,
            o.peak_open_groups,
            o.peak_open_bytes,
            frontier[i],
            recommended == Some(i),
            baseline == Some(i),
        );
    }
    out
}

/// An SVG scatter plot of monthly cost against p99 delay: every candidate as a dot, the Pareto
/// frontier joined by a line, the seed's baseline and the recommendation labelled, the budget as
/// a vertical line.
pub fn svg(
    outcomes: &[Outcome],
    recommended: Option<usize>,
    baseline: Option<usize>,
    budget_ms: u64,
) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 560.0, 80.0, 30.0, 40.0, 60.0);
    let max_x = outcomes
        .iter()
        .map(|o| o.delay_p99_ms)
        .max()
        .unwrap_or(1)
        .max(budget_ms)
        .max(1) as f64
        * 1.05;
    let max_y = outcomes
        .iter()
        .map(|o| o.cost_per_month)
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    let x = |ms: u64| left + (ms as f64 / max_x) * (w - left - right);
    let y = |cost: f64| h - bottom - (cost / max_y) * (h - top - bottom);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">Firestore cost per month against p99 delivery delay</text>"#,
        w / 2.0
    );
    // Axes with five ticks each.
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{0}" x2="{1}" y2="{0}" stroke="#333"/>"##,
        h - bottom,
        w - right
    );
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#333"/>"##,
        h - bottom
    );
    for i in 0..=5 {
        let ms = (max_x / 5.0 * i as f64) as u64;
        let cost = max_y / 5.0 * i as f64;
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
        r#"<text x="{}" y="{}" text-anchor="middle">p99 delay from message to delivered group</text>"#,
        w / 2.0,
        h - 15.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">$ per month</text>"#,
        h / 2.0,
        h / 2.0
    );
    // The budget.
    let _ = writeln!(
        s,
        r##"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{1}" stroke="#c60" stroke-dasharray="5,4"/><text x="{2:.1}" y="{3}" fill="#c60">p99 budget {4}</text>"##,
        x(budget_ms),
        h - bottom,
        x(budget_ms) + 4.0,
        top + 12.0,
        ms_text(budget_ms)
    );
    // The frontier, joined in order of delay.
    let frontier = pareto_frontier(outcomes);
    let mut front: Vec<&Outcome> = outcomes
        .iter()
        .zip(&frontier)
        .filter(|(_, f)| **f)
        .map(|(o, _)| o)
        .collect();
    front.sort_by_key(|o| o.delay_p99_ms);
    let points: Vec<String> = front
        .iter()
        .map(|o| format!("{:.1},{:.1}", x(o.delay_p99_ms), y(o.cost_per_month)))
        .collect();
    let _ = writeln!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#2a7" stroke-width="2"/>"##,
        points.join(" ")
    );
    for (i, o) in outcomes.iter().enumerate() {
        let (fill, r) = if frontier[i] {
            ("#2a7", 4.5)
        } else {
            ("#99a", 3.5)
        };
        let _ = writeln!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="{r}" fill="{fill}"><title>{}</title></circle>"#,
            x(o.delay_p99_ms),
            y(o.cost_per_month),
            escape(&o.candidate.name)
        );
    }
    for (index, label, colour) in [
        (baseline, "seed (Camel)", "#c22"),
        (recommended, "recommended", "#06c"),
    ] {
        if let Some(o) = index.and_then(|i| outcomes.get(i)) {
            let (cx, cy) = (x(o.delay_p99_ms), y(o.cost_per_month));
            let _ = writeln!(
                s,
                r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="7" fill="none" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}" fill="{colour}">{label}: ${:.2}, p99 {}</text>"#,
                cx + 10.0,
                cy - 8.0,
                o.cost_per_month,
                ms_text(o.delay_p99_ms)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
