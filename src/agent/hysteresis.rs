//! Rise and fall: how many consecutive probe results it takes to flip a pair's health
//! (HAProxy's `rise` / `fall`; keepalived's `retry` is `fall - 1`).

/// Consecutive results needed to flip a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Successes in a row that bring a down pair back up.
    pub rise: u32,
    /// Failures in a row that take an up pair down.
    pub fall: u32,
}

/// keepalived brings a real server back on its first success.
pub const DEFAULT_RISE: u32 = 1;
/// keepalived's checkers retry a failed check once (`retry 1`) before removing the real
/// server: two failures in a row.
pub const DEFAULT_FALL: u32 = 2;

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            rise: DEFAULT_RISE,
            fall: DEFAULT_FALL,
        }
    }
}

/// A pair's health as the results so far make it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// `None` until the first result: the first result decides at once (a pair with no
    /// verdict yet has nothing to keep).
    state: Option<bool>,
    /// Results in a row against `state`.
    streak: u32,
}

impl Health {
    /// Up, down, or not known yet.
    pub fn state(&self) -> Option<bool> {
        self.state
    }

    /// Results in a row that disagree with the current state (0 when the last agreed).
    pub fn pending(&self) -> u32 {
        self.streak
    }

    /// Counts one result; returns the new state when it changes (or is first known).
    pub fn record(&mut self, up: bool, t: Thresholds) -> Option<bool> {
        match self.state {
            None => {
                self.state = Some(up);
                self.streak = 0;
                Some(up)
            }
            Some(now) if now == up => {
                self.streak = 0;
                None
            }
            Some(_) => {
                self.streak += 1;
                let needed = if up { t.rise } else { t.fall };
                if self.streak >= needed.max(1) {
                    self.state = Some(up);
                    self.streak = 0;
                    Some(up)
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(h: &mut Health, t: Thresholds, results: &[bool]) -> Vec<Option<bool>> {
        results.iter().map(|&r| h.record(r, t)).collect()
    }

    #[test]
    fn the_first_result_decides_at_once() {
        let t = Thresholds { rise: 3, fall: 3 };
        let mut h = Health::default();
        assert_eq!(h.state(), None);
        assert_eq!(h.record(false, t), Some(false));
        assert_eq!(h.state(), Some(false));
    }

    #[test]
    fn a_pair_goes_down_after_fall_failures_in_a_row_and_up_after_rise_successes() {
        let t = Thresholds { rise: 2, fall: 3 };
        let mut h = Health::default();
        assert_eq!(h.record(true, t), Some(true));
        // Two failures, a success (resets), then three failures: down on the third.
        assert_eq!(
            feed(&mut h, t, &[false, false, true, false, false, false]),
            [None, None, None, None, None, Some(false)]
        );
        assert_eq!(h.pending(), 0);
        // One success is not enough with rise 2; a failure resets it.
        assert_eq!(
            feed(&mut h, t, &[true, false, true, true]),
            [None, None, None, Some(true)]
        );
    }

    #[test]
    fn the_defaults_are_keepalived_s_retry_once_and_back_on_first_success() {
        let t = Thresholds::default();
        let mut h = Health::default();
        h.record(true, t);
        assert_eq!(feed(&mut h, t, &[false, false]), [None, Some(false)]);
        assert_eq!(feed(&mut h, t, &[true]), [Some(true)]);
    }

    #[test]
    fn zero_counts_act_as_one() {
        let t = Thresholds { rise: 0, fall: 0 };
        let mut h = Health::default();
        h.record(true, t);
        assert_eq!(h.record(false, t), Some(false));
        assert_eq!(h.record(true, t), Some(true));
    }
}
