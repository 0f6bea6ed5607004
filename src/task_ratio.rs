//! `--show-task-ratio` and `--show-task-ratio-json`: how the users of a run
//! split over its classes, and each class's time over its tasks, printed in
//! Locust 2.47's text layout and JSON shape (`locust/user/inspectuser.py`).
//!
//! The arithmetic is Locust's, step for step, so the numbers match to the
//! last digit: class shares come from the user counts `-u` would spawn
//! (rounded half to even, as Python's `round`), a task's share is its
//! weight over the class's total weight. Task sets appear as one entry
//! (their inner tasks are not listed: the script layer describes only a
//! class's top-level tasks).

use crate::engine::ClassSpec;
use crate::script::ClassInfo;

/// One line of the report: a class or a task, with its share (0..=1).
#[derive(Clone, Debug, PartialEq)]
pub struct Ratio {
    pub name: String,
    pub ratio: f64,
    pub tasks: Vec<Ratio>,
}

/// Users per class as Locust's `_calc_distribution` computes them.
/// `users`: `-u` when given (None: one user per unit of weight).
fn distribution(classes: &[ClassSpec], users: Option<u32>) -> Vec<f64> {
    // Python's `u.fixed_count or ...`: a fixed_count of 0 means weighted.
    let fixed = |c: &ClassSpec| c.fixed_count.filter(|n| *n > 0);
    let fixed_total: u64 = classes.iter().filter_map(fixed).map(u64::from).sum();
    let total_weight: u64 = classes
        .iter()
        .filter(|c| fixed(c).is_none())
        .map(|c| u64::from(c.weight))
        .sum();
    let users = match users {
        Some(u) if u > 0 => u64::from(u),
        _ if fixed_total == 0 => total_weight,
        _ => 1,
    };
    let weighted = users.saturating_sub(fixed_total) as f64;
    classes
        .iter()
        .map(|c| match fixed(c) {
            Some(n) => f64::from(n),
            None => (f64::from(c.weight) / total_weight as f64 * weighted).round_ties_even(),
        })
        .collect()
}

/// Locust's `get_ratio`: per class (`total` false: each class's tasks sum
/// to 1) or of the whole run (`total`: tasks scaled by the class share).
pub fn ratios(
    classes: &[ClassSpec],
    infos: &[ClassInfo],
    users: Option<u32>,
    total: bool,
) -> Vec<Ratio> {
    let counts = distribution(classes, users);
    let sum: f64 = counts.iter().sum();
    let sum = if sum == 0.0 { 1.0 } else { sum };
    classes
        .iter()
        .zip(&counts)
        .map(|(c, n)| {
            let class_ratio = n / sum;
            let parent = if total { class_ratio } else { 1.0 };
            let tasks = infos
                .iter()
                .find(|i| i.name == c.name)
                .map(|i| i.tasks.as_slice())
                .unwrap_or_default();
            let entries: u64 = tasks.iter().map(|t| u64::from(t.weight)).sum();
            let tasks = tasks
                .iter()
                .map(|t| Ratio {
                    name: t.name.clone(),
                    ratio: f64::from(t.weight) * parent / entries.max(1) as f64,
                    tasks: Vec::new(),
                })
                .collect();
            Ratio {
                name: c.name.clone(),
                ratio: class_ratio,
                tasks,
            }
        })
        .collect()
}

/// The text report, as `locust --show-task-ratio` prints it.
pub fn text(classes: &[ClassSpec], infos: &[ClassInfo], users: Option<u32>) -> String {
    let mut out = String::new();
    for (title, total) in [
        ("\n Task ratio per User class", false),
        ("\n Total task ratio", true),
    ] {
        out += title;
        out += "\n";
        out += &"-".repeat(80);
        out += "\n";
        write_level(&mut out, &ratios(classes, infos, users, total), 0);
    }
    out
}

/// Python's `" %-10s %-50s" % (pad + "%-6.1f" % pct, pad + name)`.
fn write_level(out: &mut String, items: &[Ratio], level: usize) {
    let pad = " ".repeat(2 * level);
    for r in items {
        let pct = format!("{pad}{:<6.1}", r.ratio * 100.0);
        let name = format!("{pad}{}", r.name);
        out.push_str(&format!(" {pct:<10} {name:<50}\n"));
        write_level(out, &r.tasks, level + 1);
    }
}

/// The JSON report, as `locust --show-task-ratio-json` prints it
/// (`json.dumps(..., indent=4)`: keys in class and task order).
pub fn json(classes: &[ClassSpec], infos: &[ClassInfo], users: Option<u32>) -> String {
    let mut out = String::from("{\n");
    let parts = [
        ("per_class", ratios(classes, infos, users, false)),
        ("total", ratios(classes, infos, users, true)),
    ];
    for (i, (key, items)) in parts.iter().enumerate() {
        out += &format!("    \"{key}\": ");
        write_json_map(&mut out, items, 1);
        out += if i + 1 < parts.len() { ",\n" } else { "\n" };
    }
    out += "}\n";
    out
}

fn write_json_map(out: &mut String, items: &[Ratio], depth: usize) {
    if items.is_empty() {
        out.push_str("{}");
        return;
    }
    let ind = |d: usize| "    ".repeat(d);
    out.push_str("{\n");
    for (i, r) in items.iter().enumerate() {
        let name = serde_json::to_string(&r.name).unwrap_or_else(|_| "\"?\"".into());
        let ratio = serde_json::to_string(&r.ratio).unwrap_or_else(|_| "0.0".into());
        out.push_str(&format!("{}{name}: {{\n", ind(depth + 1)));
        out.push_str(&format!("{}\"ratio\": {ratio}", ind(depth + 2)));
        // Locust gives every class a "tasks" map; a plain task has none.
        if depth <= 1 {
            out.push_str(&format!(",\n{}\"tasks\": ", ind(depth + 2)));
            write_json_map(out, &r.tasks, depth + 2);
        }
        out.push_str(&format!("\n{}}}", ind(depth + 1)));
        out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
    }
    out.push_str(&format!("{}}}", ind(depth)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, weight: u32, fixed: Option<u32>) -> ClassSpec {
        ClassSpec {
            name: name.into(),
            weight,
            fixed_count: fixed,
        }
    }

    #[test]
    fn distribution_is_locusts() {
        let classes = [spec("A", 3, None), spec("B", 1, None)];
        assert_eq!(distribution(&classes, None), vec![3.0, 1.0]);
        // 10 users: 7.5 -> 8 and 2.5 -> 2 (Python rounds half to even).
        assert_eq!(distribution(&classes, Some(10)), vec![8.0, 2.0]);
        let fixed = [spec("F", 1, Some(2)), spec("W", 1, None)];
        assert_eq!(distribution(&fixed, None), vec![2.0, 0.0]);
        assert_eq!(distribution(&fixed, Some(5)), vec![2.0, 3.0]);
    }
}
