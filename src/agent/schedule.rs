//! When each target is probed: every target on its own interval, the targets of one
//! interval spread evenly over it (HAProxy's `spread-checks` idea), so a thousand pairs
//! at 1 s are one probe a millisecond, not a burst a second.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// The offset of each target from the start: the `k`-th of `n` targets sharing an
/// interval `i` starts at `k * i / n`.
pub fn offsets(intervals: &[Duration]) -> Vec<Duration> {
    let mut seen: Vec<(Duration, u32)> = Vec::new();
    let index: Vec<u32> = intervals
        .iter()
        .map(|&i| match seen.iter_mut().find(|(d, _)| *d == i) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                seen.push((i, 1));
                0
            }
        })
        .collect();
    intervals
        .iter()
        .zip(index)
        .map(|(&i, k)| {
            let n = seen.iter().find(|(d, _)| *d == i).map_or(1, |(_, n)| *n);
            i * k / n.max(1)
        })
        .collect()
}

/// The due times of targets `0..n`, earliest first.
#[derive(Debug, Default, Clone)]
pub struct Schedule {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    intervals: Vec<Duration>,
    /// Turns that came round again before the previous one was taken (the agent is
    /// behind): each is pushed a whole interval on instead of running twice.
    pub overruns: u64,
}

impl Schedule {
    /// Targets with these intervals, spread from `start`.
    pub fn new(intervals: &[Duration], start: Instant) -> Schedule {
        let heap = offsets(intervals)
            .into_iter()
            .enumerate()
            .map(|(i, off)| Reverse((start + off, i)))
            .collect();
        Schedule {
            heap,
            intervals: intervals.to_vec(),
            overruns: 0,
        }
    }

    /// Every target's interval, by index.
    pub fn intervals(&self) -> &[Duration] {
        &self.intervals
    }

    /// When the next target is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// Brings target `index`'s next turn forward to `at` (never later than it was
    /// booked); its turns then go on one interval apart from there.
    pub fn expedite(&mut self, index: usize, at: Instant) {
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        for Reverse((t, i)) in entries.iter_mut() {
            if *i == index && *t > at {
                *t = at;
            }
        }
        self.heap = entries.into();
    }

    /// Every target due at `now`, each booked again one interval later.
    pub fn take_due(&mut self, now: Instant) -> Vec<usize> {
        let mut due = Vec::new();
        while let Some(&Reverse((t, i))) = self.heap.peek() {
            if t > now {
                break;
            }
            self.heap.pop();
            due.push(i);
            let interval = self.intervals[i].max(Duration::from_millis(1));
            let mut next = t + interval;
            if next <= now {
                self.overruns += 1;
                next = now + interval;
            }
            self.heap.push(Reverse((next, i)));
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expedited_turn_comes_sooner_never_later_and_the_next_an_interval_on() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut s = Schedule::new(&[second * 10, second * 10], start);
        // Target 0 at start, target 1 at start + 5 s.
        assert_eq!(s.take_due(start), vec![0]);
        s.expedite(0, start + second);
        assert_eq!(s.next_due(), Some(start + second));
        // Never later: asking for 20 s changes nothing.
        s.expedite(1, start + second * 20);
        assert_eq!(s.take_due(start + second), vec![0]);
        assert_eq!(s.take_due(start + second * 5), vec![1]);
        assert_eq!(s.next_due(), Some(start + second * 11));
    }

    #[test]
    fn a_thousand_targets_at_one_second_are_one_a_millisecond() {
        let intervals = vec![Duration::from_secs(1); 1000];
        let off = offsets(&intervals);
        for (k, o) in off.iter().enumerate() {
            assert_eq!(*o, Duration::from_millis(k as u64));
        }
        // Over two seconds, no 10 ms window holds more than 10 turns.
        let start = Instant::now();
        let mut s = Schedule::new(&intervals, start);
        let mut counts = vec![0u32; 200];
        for step in 0..200u64 {
            let now = start + Duration::from_millis(step * 10 + 9);
            counts[step as usize] = s.take_due(now).len() as u32;
        }
        assert!(counts.iter().all(|&c| c == 10), "{counts:?}");
        assert_eq!(s.overruns, 0);
    }

    #[test]
    fn each_interval_is_spread_on_its_own() {
        let a = Duration::from_secs(1);
        let b = Duration::from_secs(3);
        let off = offsets(&[a, b, a, b, b, a, a]);
        assert_eq!(
            off,
            [
                Duration::ZERO,
                Duration::ZERO,
                Duration::from_millis(250),
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_millis(500),
                Duration::from_millis(750),
            ]
        );
    }

    #[test]
    fn every_target_comes_round_once_per_interval() {
        let start = Instant::now();
        let intervals = [Duration::from_millis(100), Duration::from_millis(300)];
        let mut s = Schedule::new(&intervals, start);
        let mut seen = [0u32; 2];
        for ms in 0..=899u64 {
            for i in s.take_due(start + Duration::from_millis(ms)) {
                seen[i] += 1;
            }
        }
        assert_eq!(seen, [9, 3]);
    }

    #[test]
    fn a_late_turn_is_moved_on_not_run_twice() {
        let start = Instant::now();
        let mut s = Schedule::new(&[Duration::from_millis(10)], start);
        assert_eq!(s.take_due(start + Duration::from_millis(55)), vec![0]);
        assert_eq!(s.overruns, 1);
        assert_eq!(
            s.take_due(start + Duration::from_millis(60)),
            Vec::<usize>::new()
        );
        assert_eq!(s.next_due(), Some(start + Duration::from_millis(65)));
    }
}
