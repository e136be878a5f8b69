//! The depool threshold (PyBal's `depool-threshold`): never report more than the fraction
//! `1 - F` of a virtual service's pairs down at once. A mass failure is more often the
//! checker's or the network's fault than every server's; the servers kept in service are
//! those that failed most recently (the longest-failed are the likeliest really down).

/// One pair of a service, as the threshold sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Its health: `None` before the first result (counted as up).
    pub healthy: Option<bool>,
    /// When it went down, as an ever-increasing sequence number (larger = more recent).
    pub down_since: u64,
}

/// What to report for each member (`true` = up), and how many are held up against their
/// health by the threshold. `threshold` is clamped to 0..=1; 0 turns the guard off.
pub fn apply(members: &[Member], threshold: f64) -> (Vec<bool>, usize) {
    let mut report: Vec<bool> = members.iter().map(|m| m.healthy != Some(false)).collect();
    let threshold = if threshold.is_finite() {
        threshold.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let total = members.len();
    // At least this many must stay reported up (a hair below, so 0.5 of 4 is 2, not 3).
    let min_up = ((total as f64) * threshold - 1e-9).ceil().max(0.0) as usize;
    let up = report.iter().filter(|&&r| r).count();
    if up >= min_up {
        return (report, 0);
    }
    let mut down: Vec<usize> = (0..total).filter(|&i| !report[i]).collect();
    // Most recent failure first; ties by position, for a stable choice.
    down.sort_by(|&a, &b| {
        members[b]
            .down_since
            .cmp(&members[a].down_since)
            .then(a.cmp(&b))
    });
    let hold = (min_up - up).min(down.len());
    for &i in &down[..hold] {
        report[i] = true;
    }
    (report, hold)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(health: &[(Option<bool>, u64)]) -> Vec<Member> {
        health
            .iter()
            .map(|&(healthy, down_since)| Member {
                healthy,
                down_since,
            })
            .collect()
    }

    #[test]
    fn zero_threshold_reports_health_as_it_is() {
        let m = members(&[(Some(false), 1), (Some(false), 2), (Some(true), 0)]);
        assert_eq!(apply(&m, 0.0), (vec![false, false, true], 0));
    }

    #[test]
    fn half_of_a_pool_stays_up_and_the_most_recent_failures_are_kept() {
        // Four servers, three down (in order 7, 3, 9): 0.5 keeps two up, so the one
        // that failed last (9) is held up with the healthy one.
        let m = members(&[
            (Some(false), 7),
            (Some(false), 3),
            (Some(true), 0),
            (Some(false), 9),
        ]);
        assert_eq!(apply(&m, 0.5), (vec![false, false, true, true], 1));
        // All four down: the two most recent (9, 7) are held.
        let m = members(&[
            (Some(false), 7),
            (Some(false), 3),
            (Some(false), 1),
            (Some(false), 9),
        ]);
        assert_eq!(apply(&m, 0.5), (vec![true, false, false, true], 2));
    }

    #[test]
    fn within_the_threshold_nothing_is_held() {
        let m = members(&[(Some(false), 1), (Some(true), 0), (Some(true), 0)]);
        assert_eq!(apply(&m, 0.6), (vec![false, true, true], 0));
        // Not yet probed counts as up.
        let m = members(&[(Some(false), 1), (None, 0)]);
        assert_eq!(apply(&m, 0.5), (vec![false, true], 0));
    }

    #[test]
    fn a_threshold_of_one_never_reports_a_server_down_and_bad_values_are_off() {
        let m = members(&[(Some(false), 1), (Some(false), 2)]);
        assert_eq!(apply(&m, 1.0), (vec![true, true], 2));
        assert_eq!(apply(&m, f64::NAN), (vec![false, false], 0));
        assert_eq!(apply(&m, -3.0), (vec![false, false], 0));
        assert_eq!(apply(&[], 0.5), (vec![], 0));
    }
}
