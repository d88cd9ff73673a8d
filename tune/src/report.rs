//! Reading the outcomes: the Pareto frontiers of cost against p99 and p50 delay, the
//! recommendation under delay budgets (with or without a leading edge), and the outputs
//! (terminal table, CSV, JSON, SVG plot).

use std::fmt::Write as _;

use plotters::prelude::*;
use plotters::style::colors::{BLACK, WHITE};

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

/// Drawing the plot failed (a bug: it draws into memory).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the plot: {0}")]
pub struct PlotError(String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(err: DrawingAreaErrorKind<E>) -> Self {
        Self(err.to_string())
    }
}

/// The rows to label in every panel.
#[derive(Clone, Copy)]
struct Marks {
    recommended: Option<usize>,
    baseline: Option<usize>,
}

const GREY: RGBColor = RGBColor(0x99, 0x99, 0xaa);
const ORANGE: RGBColor = RGBColor(0xee, 0x88, 0x00);
const GREEN: RGBColor = RGBColor(0x22, 0xaa, 0x77);
const RED: RGBColor = RGBColor(0xcc, 0x22, 0x22);
const BLUE: RGBColor = RGBColor(0x00, 0x66, 0xcc);
const BUDGET: RGBColor = RGBColor(0xcc, 0x66, 0x00);

/// An SVG plot of monthly cost against delivery delay (drawn with plotters), in two panels: the
/// median delay (where a leading edge shows) and the p99 delay. Every policy is a dot, orange
/// with a leading edge and grey without; each panel joins the Pareto frontier of the policies
/// without a leading edge (green) and with one (orange). The seed's baseline and the
/// recommendation are circled and labelled, the p99 budget is a dashed line; each panel has a
/// legend, and the axes have round ticks.
pub fn svg(
    outcomes: &[Outcome],
    recommended: Option<usize>,
    baseline: Option<usize>,
    budget_ms: u64,
) -> Result<String, PlotError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1200, 620)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(
            "Firestore cost per month against delivery delay",
            ("sans-serif", 20),
        )?;
        let (left, right) = root.split_horizontally(600);
        let marks = Marks {
            recommended,
            baseline,
        };
        panel(&left, outcomes, |o| o.delay_p50_ms, "p50", None, marks)?;
        panel(
            &right,
            outcomes,
            |o| o.delay_p99_ms,
            "p99",
            Some(budget_ms),
            marks,
        )?;
        root.present()?;
    }
    Ok(out)
}

/// A tick value without float noise or trailing zeros: 2.5, 10, 0.25.
fn tick(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    outcomes: &[Outcome],
    delay: impl Fn(&Outcome) -> u64,
    label: &str,
    budget_ms: Option<u64>,
    marks: Marks,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let seconds = |o: &Outcome| delay(o) as f64 / 1000.0;
    let max_x = outcomes
        .iter()
        .map(&seconds)
        .fold(budget_ms.unwrap_or(0) as f64 / 1000.0, f64::max)
        .max(0.001)
        * 1.05;
    let max_y = outcomes
        .iter()
        .map(|o| o.cost_per_month)
        .fold(0.0, f64::max)
        .max(0.01)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(0.0..max_x, 0.0..max_y)?;
    chart
        .configure_mesh()
        .x_desc(format!("{label} delay from message to delivered group"))
        .y_desc("$ per month")
        .x_label_formatter(&|v| format!("{} s", tick(*v)))
        .y_label_formatter(&|v| format!("${}", tick(*v)))
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()?;

    if let Some(budget) = budget_ms {
        let x = budget as f64 / 1000.0;
        chart
            .draw_series(DashedLineSeries::new(
                [(x, 0.0), (x, max_y)],
                6,
                4,
                BUDGET.stroke_width(1),
            ))?
            .label(format!("{label} budget {}", ms_text(budget)))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], BUDGET));
    }

    let led = |o: &Outcome| o.candidate.policy.leading_edge_idle_ms != 0;
    for (with, colour, name) in [
        (false, GREEN, "Pareto frontier, no leading edge"),
        (true, ORANGE, "Pareto frontier, leading edge"),
    ] {
        let group: Vec<&Outcome> = outcomes.iter().filter(|o| led(o) == with).collect();
        let on = frontier_of(&group, &delay);
        let mut front: Vec<(f64, f64)> = group
            .iter()
            .zip(&on)
            .filter(|(_, on)| **on)
            .map(|(o, _)| (seconds(o), o.cost_per_month))
            .collect();
        if front.is_empty() {
            continue;
        }
        front.sort_by(|a, b| a.0.total_cmp(&b.0));
        front.dedup();
        chart
            .draw_series(LineSeries::new(front, colour.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
    }
    for (with, colour, name) in [
        (false, GREY, "a policy without a leading edge"),
        (true, ORANGE, "a policy with a leading edge"),
    ] {
        let points: Vec<(f64, f64)> = outcomes
            .iter()
            .filter(|o| led(o) == with)
            .map(|o| (seconds(o), o.cost_per_month))
            .collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, colour.filled())),
            )?
            .label(name)
            .legend(move |(x, y)| Circle::new((x + 8, y), 3, colour.filled()));
    }
    for (index, name, colour) in [
        (marks.baseline, "seed (Camel)", RED),
        (marks.recommended, "recommended", BLUE),
    ] {
        let Some(o) = index.and_then(|i| outcomes.get(i)) else {
            continue;
        };
        let text = format!(
            "{name}: ${:.2}, {label} {}",
            o.cost_per_month,
            ms_text(delay(o))
        );
        chart.draw_series(std::iter::once(
            EmptyElement::at((seconds(o), o.cost_per_month))
                + Circle::new((0, 0), 7, colour.stroke_width(2))
                + Text::new(
                    text,
                    (10, -16),
                    ("sans-serif", 13).into_font().color(&colour),
                ),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 12))
        .draw()?;
    Ok(())
}
