//! Which user classes run, and on which shard: Locust's dispatch rules.
//!
//! `fixed_count` classes get their users first (in script order), then the
//! rest is shared by weight. The weighted part follows a smooth weighted
//! round-robin sequence, so the proportions are exact at every multiple of
//! the total weight, within one user in between, and raising the user count
//! by one only ever adds a user (no class loses one on the way up). Each
//! class's users are spread evenly over shards from a fixed per-class offset,
//! so ramping never moves a user from one shard to another.

/// What the dispatcher needs to know of a user class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassSpec {
    pub name: String,
    pub weight: u32,
    pub fixed_count: Option<u32>,
}

/// Per-class user counts for any total, computed incrementally.
pub struct Dispatcher {
    classes: Vec<ClassSpec>,
    weighted: Vec<usize>,
    /// Smooth weighted round-robin: the class of the k-th weighted user.
    sequence: Vec<u32>,
    current: Vec<i64>,
}

impl Dispatcher {
    pub fn new(classes: Vec<ClassSpec>) -> Self {
        let weighted: Vec<usize> = (0..classes.len())
            .filter(|&i| classes[i].fixed_count.is_none() && classes[i].weight > 0)
            .collect();
        let current = vec![0; weighted.len()];
        Dispatcher {
            classes,
            weighted,
            sequence: Vec::new(),
            current,
        }
    }

    /// Users of each class (in class order) when `total` users run.
    pub fn counts(&mut self, total: u32) -> Vec<u32> {
        let mut counts = vec![0u32; self.classes.len()];
        let mut left = total;
        for (count, class) in counts.iter_mut().zip(&self.classes) {
            if let Some(fixed) = class.fixed_count {
                *count = fixed.min(left);
                left -= *count;
            }
        }
        if self.weighted.is_empty() {
            return counts;
        }
        self.extend_to(left as usize);
        for &k in &self.sequence[..left as usize] {
            counts[self.weighted[k as usize]] += 1;
        }
        counts
    }

    fn extend_to(&mut self, len: usize) {
        let total: i64 = self
            .weighted
            .iter()
            .map(|&i| i64::from(self.classes[i].weight))
            .sum();
        while self.sequence.len() < len {
            let mut best = 0;
            for (k, &i) in self.weighted.iter().enumerate() {
                self.current[k] += i64::from(self.classes[i].weight);
                if self.current[k] > self.current[best] {
                    best = k;
                }
            }
            self.current[best] -= total;
            self.sequence.push(best as u32);
        }
    }
}

/// `classes` with only those named in `only` taking users (`None`: all):
/// the others keep their place (the engine indexes classes by position)
/// with no weight and no fixed count, so they get 0 and the listed ones
/// share users by their own weights and fixed counts.
pub fn subset(classes: &[ClassSpec], only: Option<&[String]>) -> Vec<ClassSpec> {
    classes
        .iter()
        .map(|c| match only {
            Some(names) if !names.contains(&c.name) => ClassSpec {
                name: c.name.clone(),
                weight: 0,
                fixed_count: None,
            },
            _ => c.clone(),
        })
        .collect()
}

/// Users of each class per shard: `result[shard][class]`.
pub fn per_shard(counts: &[u32], shards: usize) -> Vec<Vec<u32>> {
    let mut out = vec![vec![0u32; counts.len()]; shards];
    let s = shards as u32;
    for (class, &n) in counts.iter().enumerate() {
        let offset = (class % shards) as u32;
        for (shard, row) in out.iter_mut().enumerate() {
            // Users k = 0..n go to shard (offset + k) % s.
            let first = (shard as u32 + s - offset) % s;
            row[class] = if first < n {
                (n - first).div_ceil(s)
            } else {
                0
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, weight: u32, fixed: Option<u32>) -> ClassSpec {
        ClassSpec {
            name: name.into(),
            weight,
            fixed_count: fixed,
        }
    }

    #[test]
    fn weights_are_exact_at_multiples_and_close_between() {
        let mut d = Dispatcher::new(vec![class("a", 3, None), class("b", 1, None)]);
        assert_eq!(d.counts(4), vec![3, 1]);
        assert_eq!(d.counts(400), vec![300, 100]);
        for total in 0..200 {
            let c = d.counts(total);
            assert_eq!(c.iter().sum::<u32>(), total);
            let ideal = f64::from(total) * 0.75;
            assert!((f64::from(c[0]) - ideal).abs() <= 1.0, "{total}: {c:?}");
        }
    }

    #[test]
    fn ramping_up_never_takes_a_user_away() {
        let mut d = Dispatcher::new(vec![
            class("a", 5, None),
            class("b", 3, None),
            class("c", 2, None),
        ]);
        let mut prev = d.counts(0);
        for total in 1..300 {
            let c = d.counts(total);
            assert!(
                c.iter().zip(&prev).all(|(n, p)| n >= p),
                "{prev:?} -> {c:?}"
            );
            prev = c;
        }
    }

    #[test]
    fn a_subset_shares_users_by_its_own_weights() {
        let all = vec![
            class("a", 3, None),
            class("b", 1, None),
            class("f", 1, Some(2)),
        ];
        let only = ["b".to_string(), "f".to_string()];
        let mut d = Dispatcher::new(subset(&all, Some(&only)));
        assert_eq!(d.counts(10), vec![0, 8, 2]);
        let only_a = ["a".to_string()];
        let mut d = Dispatcher::new(subset(&all, Some(&only_a)));
        assert_eq!(d.counts(7), vec![7, 0, 0]);
        let mut d = Dispatcher::new(subset(&all, None));
        assert_eq!(d.counts(6), vec![3, 1, 2]);
    }

    #[test]
    fn fixed_count_first() {
        let mut d = Dispatcher::new(vec![class("w", 1, None), class("f", 1, Some(2))]);
        assert_eq!(d.counts(1), vec![0, 1]);
        assert_eq!(d.counts(2), vec![0, 2]);
        assert_eq!(d.counts(10), vec![8, 2]);
        let mut only_fixed = Dispatcher::new(vec![class("f", 1, Some(3))]);
        assert_eq!(only_fixed.counts(10), vec![3]);
    }

    #[test]
    fn shards_share_each_class_evenly() {
        let rows = per_shard(&[5, 2, 0], 2);
        assert_eq!(rows, vec![vec![3, 1, 0], vec![2, 1, 0]]);
        for shards in 1..6 {
            for n in 0..40u32 {
                let rows = per_shard(&[n, n / 2], shards);
                for class in 0..2 {
                    let col: Vec<u32> = rows.iter().map(|r| r[class]).collect();
                    assert_eq!(col.iter().sum::<u32>(), [n, n / 2][class]);
                    let (min, max) = (col.iter().min().unwrap(), col.iter().max().unwrap());
                    assert!(max - min <= 1, "{col:?}");
                }
            }
        }
    }
}
