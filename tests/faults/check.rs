//! The checker: from what the service desk was told (accepted incidents), what the supplier
//! systems hold (the simulators' final state) and what the hub's record says, the figures of a
//! run, and every ticket or update that breaks the promise (nothing lost, nothing twice).

use serde_json::Value;
use siam_hub::sim::harness::TicketState;
use std::collections::{BTreeMap, HashMap};

/// One incident the hub accepted, and the updates made to it on either side.
#[derive(Clone, Debug, Default)]
pub struct Accepted {
    pub reference: String,
    /// The supplier its service routes to.
    pub supplier: String,
    /// A note the service desk added through the hub: it must reach the supplier ticket once.
    pub hub_note: Option<String>,
    /// A note the supplier's agent added: it must reach the record once (and not come back).
    pub supplier_note: Option<String>,
    /// The agent started work: the record must say `in_progress`.
    pub status_change: bool,
}

#[derive(Debug, Default)]
pub struct Figures {
    pub accepted: usize,
    pub delivered: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub orphans: usize,
    pub wrongly_linked: usize,
    pub updates: usize,
    pub updates_applied: usize,
    /// Updates of lost or duplicated incidents, which the loss or duplicate already condemns.
    pub not_judged: usize,
    pub updates_missing: usize,
    pub double_applied: usize,
    pub dead_letters: usize,
    /// Agent updates a simulator refused (not made, so not judged).
    pub agent_refused: Vec<String>,
    /// One line per problem, naming the ticket.
    pub problems: Vec<String>,
    /// Dead letters by reason: (count, example references).
    pub dead_by_reason: BTreeMap<String, (usize, Vec<String>)>,
}

impl Figures {
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.orphans == 0 && self.wrongly_linked == 0 && self.double_applied == 0 && self.updates_missing == 0
    }
}

/// How many notes hold `token`.
fn count(notes: impl Iterator<Item = String>, token: &str) -> usize {
    notes.filter(|t| t.contains(token)).count()
}

pub fn check(accepted: &[Accepted], tickets: &[TicketState], records: &HashMap<String, Value>, dead: &[Value]) -> Figures {
    let updates_of = |a: &Accepted| usize::from(a.hub_note.is_some()) + usize::from(a.supplier_note.is_some()) + usize::from(a.status_change);
    let updates = accepted.iter().map(updates_of).sum();
    let mut f = Figures { accepted: accepted.len(), updates, ..Figures::default() };
    let mut by_ref: HashMap<&str, Vec<&TicketState>> = HashMap::new();
    for t in tickets {
        by_ref.entry(t.reference.as_str()).or_default().push(t);
    }
    for a in accepted {
        let held: Vec<&TicketState> = by_ref.remove(a.reference.as_str()).unwrap_or_default();
        let Some(record) = records.get(&a.reference) else {
            f.problems.push(format!("no record: {} was accepted but the hub does not serve it", a.reference));
            f.lost += 1;
            f.not_judged += updates_of(a);
            continue;
        };
        let ticket = match held.as_slice() {
            [] => {
                f.lost += 1;
                f.problems.push(format!("lost: {} has no ticket at {}; legs {}", a.reference, a.supplier, record["legs"]));
                f.not_judged += updates_of(a);
                continue;
            }
            [one] => {
                f.delivered += 1;
                *one
            }
            many => {
                f.duplicated += 1;
                let ids: Vec<String> = many.iter().map(|t| format!("{} {}", t.system, t.number)).collect();
                f.problems.push(format!("duplicated: {} is held by {} supplier tickets: {}", a.reference, many.len(), ids.join(", ")));
                // The agent worked one of the tickets, perhaps not the one the record holds:
                // its updates say nothing more than the duplicate does.
                f.not_judged += updates_of(a);
                continue;
            }
        };
        let legs = record["legs"].as_array().cloned().unwrap_or_default();
        let holds = |l: &Value| [&l["native_id"], &l["native_number"]].into_iter().any(|v| v == ticket.id.as_str() || v == ticket.number.as_str());
        let linked = legs.iter().any(|l| l["supplier"] == a.supplier.as_str() && holds(l));
        if !linked {
            f.wrongly_linked += 1;
            f.problems.push(format!("unlinked: {}'s legs do not hold its ticket {} {}: {}", a.reference, ticket.system, ticket.number, record["legs"]));
        }
        let record_notes = || record["notes"].as_array().cloned().unwrap_or_default().into_iter().map(|n| n["text"].as_str().unwrap_or_default().to_string());
        let supplier_notes = || ticket.notes.iter().map(|n| n.text.clone());
        for (what, token) in [("hub note", &a.hub_note), ("supplier note", &a.supplier_note)] {
            let Some(token) = token else { continue };
            let (at_hub, at_supplier) = (count(record_notes(), token), count(supplier_notes(), token));
            match (at_hub, at_supplier) {
                (1, 1) => f.updates_applied += 1,
                (h, s) if h > 1 || s > 1 => {
                    f.double_applied += 1;
                    let origins: Vec<&str> = record["notes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|n| n["text"].as_str().is_some_and(|t| t.contains(token.as_str())))
                        .filter_map(|n| n["origin"].as_str())
                        .collect();
                    f.problems.push(format!(
                        "double-applied: {what} of {} is on the record {h} times (from {}) and on {} {} {s} times",
                        a.reference,
                        origins.join(", "),
                        ticket.system,
                        ticket.number
                    ));
                }
                (h, s) => {
                    f.updates_missing += 1;
                    f.problems.push(format!("update lost: {what} of {} is on the record {h} times and on {} {} {s} times", a.reference, ticket.system, ticket.number));
                }
            }
        }
        if a.status_change {
            if record["status"] == "in_progress" {
                f.updates_applied += 1;
            } else {
                f.updates_missing += 1;
                f.problems.push(format!(
                    "update lost: {}'s supplier started work ({} {} is `{}`) but the record is `{}`",
                    a.reference,
                    ticket.system,
                    ticket.number,
                    ticket.status,
                    record["status"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    for (reference, held) in by_ref {
        f.orphans += held.len();
        for t in held {
            f.problems.push(format!("orphan: {} {} carries reference `{reference}`, which no accepted incident has", t.system, t.number));
        }
    }
    for d in dead {
        f.dead_letters += 1;
        let reason = d["reason"].as_str().unwrap_or("no reason given").to_string();
        let what = format!("{} {}", d["routing_key"].as_str().unwrap_or_default(), d["incident_ref"].as_str().unwrap_or("-"));
        let e = f.dead_by_reason.entry(reason).or_default();
        e.0 += 1;
        if e.1.len() < 5 {
            e.1.push(what);
        }
    }
    f
}

/// The figures as a table, then the dead letters by reason, then the problems (the first 40).
pub fn print(f: &Figures, faults: &[String]) {
    println!();
    println!("fault suite: faults injected");
    for line in faults {
        println!("  {line}");
    }
    println!();
    println!("| figure | count |");
    println!("| --- | ---: |");
    for (name, n) in [
        ("incidents accepted (201)", f.accepted),
        ("delivered (exactly one supplier ticket)", f.delivered),
        ("lost (no supplier ticket)", f.lost),
        ("duplicated (more than one supplier ticket)", f.duplicated),
        ("supplier tickets no incident holds", f.orphans),
        ("tickets the record does not link", f.wrongly_linked),
        ("updates made (notes both ways, status changes)", f.updates),
        ("updates applied once", f.updates_applied),
        ("updates on lost or duplicated incidents (not judged)", f.not_judged),
        ("updates never applied", f.updates_missing),
        ("updates applied twice or more", f.double_applied),
        ("dead letters", f.dead_letters),
        ("agent updates the simulators refused (not made)", f.agent_refused.len()),
    ] {
        println!("| {name} | {n} |");
    }
    for a in f.agent_refused.iter().take(5) {
        println!("  refused agent update: {a}");
    }
    if !f.dead_by_reason.is_empty() {
        println!();
        println!("dead letters by reason:");
        for (reason, (n, examples)) in &f.dead_by_reason {
            println!("  {n} x {reason}  (e.g. {})", examples.join("; "));
        }
    }
    if !f.problems.is_empty() {
        println!();
        println!("problems ({}):", f.problems.len());
        for p in f.problems.iter().take(40) {
            println!("  {p}");
        }
        if f.problems.len() > 40 {
            println!("  ... and {} more", f.problems.len() - 40);
        }
    }
}
