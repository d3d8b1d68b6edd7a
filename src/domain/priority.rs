//! Priority derived from impact x urgency by a configurable matrix.

use super::incident::{Impact, Priority, Urgency};
use serde::{Deserialize, Serialize};

/// `rows[impact-1][urgency-1]` is the priority. The default is ServiceNow's base data lookup,
/// which most public-sector service desks already use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Vec<u8>>", into = "Vec<Vec<u8>>")]
pub struct PriorityMatrix {
    rows: [[Priority; 3]; 3],
}

impl PriorityMatrix {
    pub fn derive(&self, impact: Impact, urgency: Urgency) -> Priority {
        self.rows[usize::from(impact.get() - 1)][usize::from(urgency.get() - 1)]
    }

    /// The impact and urgency that give `priority` under this matrix, nearest to the given pair
    /// (the pair itself when it already does; on a tie, the one that keeps the impact, then the
    /// higher impact); `None` when no pair gives it.
    pub fn pair_for(&self, priority: Priority, impact: Impact, urgency: Urgency) -> Option<(Impact, Urgency)> {
        let levels = || (1..=3u8).filter_map(Impact::new);
        let distance = |i: Impact, u: Urgency| {
            let d = |a: u8, b: u8| u32::from(a.abs_diff(b));
            (d(i.get(), impact.get()) + d(u.get(), urgency.get()), u32::from(i != impact), i.get())
        };
        levels().flat_map(|i| (1..=3u8).filter_map(Urgency::new).map(move |u| (i, u))).filter(|(i, u)| self.derive(*i, *u) == priority).min_by_key(|(i, u)| distance(*i, *u))
    }
}

impl Default for PriorityMatrix {
    fn default() -> Self {
        PriorityMatrix::try_from(vec![vec![1, 2, 3], vec![2, 3, 4], vec![3, 4, 5]]).expect("the built-in matrix is valid")
    }
}

impl TryFrom<Vec<Vec<u8>>> for PriorityMatrix {
    type Error = String;

    fn try_from(v: Vec<Vec<u8>>) -> Result<Self, Self::Error> {
        if v.len() != 3 || v.iter().any(|r| r.len() != 3) {
            return Err("the priority matrix must have 3 rows (impact 1..3) of 3 priorities (urgency 1..3)".into());
        }
        let mut rows = [[Priority::LOWEST; 3]; 3];
        for (i, row) in v.iter().enumerate() {
            for (j, p) in row.iter().enumerate() {
                rows[i][j] = Priority::new(*p).ok_or_else(|| format!("priority matrix entry [{}][{}] = {p} is not a priority 1..5", i + 1, j + 1))?;
            }
        }
        Ok(PriorityMatrix { rows })
    }
}

impl From<PriorityMatrix> for Vec<Vec<u8>> {
    fn from(m: PriorityMatrix) -> Self {
        m.rows.iter().map(|r| r.iter().map(|p| p.get()).collect()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_matrix_matches_servicenow_base_lookup() {
        let m = PriorityMatrix::default();
        let p = |i, u| m.derive(Impact::new(i).unwrap(), Urgency::new(u).unwrap()).get();
        assert_eq!(p(1, 1), 1);
        assert_eq!(p(1, 2), 2);
        assert_eq!(p(2, 1), 2);
        assert_eq!(p(2, 2), 3);
        assert_eq!(p(3, 1), 3);
        assert_eq!(p(2, 3), 4);
        assert_eq!(p(3, 3), 5);
    }

    #[test]
    fn pairs_for_a_priority_stay_nearest_to_the_record() {
        // A supplier that rates everything one step more urgent than the base lookup.
        let m = PriorityMatrix::try_from(vec![vec![1, 1, 2], vec![1, 2, 3], vec![2, 3, 4]]).unwrap();
        let pair = |p: u8, i: u8, u: u8| m.pair_for(Priority::new(p).unwrap(), Impact::new(i).unwrap(), Urgency::new(u).unwrap()).map(|(i, u)| (i.get(), u.get()));
        assert_eq!(pair(2, 2, 2), Some((2, 2)), "already right: unchanged");
        assert_eq!(pair(3, 2, 2), Some((2, 3)), "the impact is kept, the urgency gives way");
        assert_eq!(pair(1, 1, 2), Some((1, 2)));
        assert_eq!(pair(2, 1, 1), Some((1, 3)));
        assert_eq!(pair(5, 3, 3), None, "this matrix has no priority 5");
        let base = PriorityMatrix::default();
        for (i, u) in [(1, 1), (2, 3), (3, 2)] {
            let (i, u) = (Impact::new(i).unwrap(), Urgency::new(u).unwrap());
            assert_eq!(base.pair_for(base.derive(i, u), i, u), Some((i, u)));
        }
    }

    #[test]
    fn rejects_malformed_matrix() {
        assert!(PriorityMatrix::try_from(vec![vec![1, 2, 3]]).is_err());
        assert!(PriorityMatrix::try_from(vec![vec![1, 2, 3], vec![2, 3, 4], vec![3, 4, 9]]).is_err());
    }
}
