//! A test record type and the small sequential reference model the operator must agree with.

use std::collections::{BTreeMap, HashMap};

use confab_pipeline::{Aggregatable, CompletionReason, WindowPolicy};
use serde::{Deserialize, Serialize};

/// A record with a small key, a unique id, an event time and a size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Rec {
    pub key: u8,
    pub id: String,
    pub time: u64,
    pub size: usize,
}

impl Aggregatable for Rec {
    fn event_time_ms(&self) -> u64 {
        self.time
    }
    fn size_bytes(&self) -> usize {
        self.size
    }
    fn record_id(&self) -> &str {
        &self.id
    }
}

/// A group as the tests compare them: key, record ids in order, and reason.
pub(crate) type Outline = (u8, Vec<String>, CompletionReason);

/// The groups `policy` makes of `records` (in log order, times never decreasing), when the input
/// time last reached `final_epoch` before the input ended.
///
/// With a leading edge of T, a record whose key's previous record is at least T earlier, or that
/// is its key's first, is a group of one by itself, and the key's open group (which such a pause
/// has always timed out) completes before it.
pub(crate) fn reference_groups(
    records: &[Rec],
    policy: &WindowPolicy,
    final_epoch: u64,
) -> Vec<Outline> {
    struct Open {
        ids: Vec<String>,
        first: u64,
        last: u64,
        bytes: usize,
    }
    let deadline =
        |o: &Open| (o.first + policy.max_age_ms).min(o.last + policy.inactivity_timeout_ms);
    let timed_reason = |o: &Open| {
        if o.first + policy.max_age_ms <= o.last + policy.inactivity_timeout_ms {
            CompletionReason::MaxAge
        } else {
            CompletionReason::Inactivity
        }
    };
    let mut open: HashMap<u8, Open> = HashMap::new();
    let mut previous: HashMap<u8, u64> = HashMap::new();
    let mut done = Vec::new();
    for r in records {
        let idle = policy.leading_edge_idle_ms;
        let leads = idle != 0
            && previous
                .get(&r.key)
                .is_none_or(|&before| r.time >= before + idle);
        previous.insert(r.key, r.time);
        if leads {
            if let Some(o) = open.remove(&r.key) {
                assert!(
                    r.time >= deadline(&o),
                    "a pause this long timed the group out"
                );
                let reason = timed_reason(&o);
                done.push((r.key, o.ids, reason));
            }
            done.push((r.key, vec![r.id.clone()], CompletionReason::LeadingEdge));
            continue;
        }
        let mut joined = false;
        if let Some(o) = open.get_mut(&r.key) {
            if r.time >= deadline(o) {
                let reason = timed_reason(o);
                let o = open.remove(&r.key).expect("open");
                done.push((r.key, o.ids, reason));
            } else if o.bytes + r.size > policy.max_bytes {
                let o = open.remove(&r.key).expect("open");
                done.push((r.key, o.ids, CompletionReason::MaxBytes));
            } else {
                o.ids.push(r.id.clone());
                o.first = o.first.min(r.time);
                o.last = o.last.max(r.time);
                o.bytes += r.size;
                joined = true;
            }
        }
        if !joined {
            open.insert(
                r.key,
                Open {
                    ids: vec![r.id.clone()],
                    first: r.time,
                    last: r.time,
                    bytes: r.size,
                },
            );
        }
        let o = open.get(&r.key).expect("open");
        let full = if o.ids.len() >= policy.max_messages {
            Some(CompletionReason::MaxMessages)
        } else if o.bytes >= policy.max_bytes {
            Some(CompletionReason::MaxBytes)
        } else {
            None
        };
        if let Some(reason) = full {
            let o = open.remove(&r.key).expect("open");
            done.push((r.key, o.ids, reason));
        }
    }
    let rest: BTreeMap<u8, Open> = open.into_iter().collect();
    for (key, o) in rest {
        let reason = if deadline(&o) <= final_epoch {
            timed_reason(&o)
        } else {
            CompletionReason::EndOfInput
        };
        done.push((key, o.ids, reason));
    }
    done.sort();
    done
}
