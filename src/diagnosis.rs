//! Why an authentic token's OTP is outside the window: where its code matches within a day of
//! now ([`ClockSearch`]), told as a [`ClockDiagnosis`] for the log line. A search costs some
//! milliseconds, so searches draw on a [`SearchBudget`] whose clock is the `now` it is given.

use core::fmt;
use std::sync::Mutex;

use subtle::ConstantTimeEq;

use crate::totp::Otp;

/// Why an authentic token's OTP is outside the window, for the log line. The client learns only
/// the reason: `otp-mismatch` for [`ClockDiagnosis::NoMatch`], `expired` for the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockDiagnosis {
    /// The OTP matches the step this many seconds away from now (negative: minted in the past), and
    /// that is not [`ClockDiagnosis::Late`]: the minting clock is off.
    Offset(i64),
    /// Minted `ago` seconds in the past, no more than [`LATE_MARGIN`] seconds later than a token
    /// stays accepted (`accepted_for` seconds after minting, at most), and not a whole number of
    /// hours: most likely used late (a page kept open, a slow fetch, an old token sent again).
    Late {
        /// How long ago the token was minted, in seconds (a whole number of OTP steps).
        ago: u64,
        /// The longest a token is accepted after minting: `otp_step × (otp_skew + 1)`.
        accepted_for: u64,
    },
    /// No step that the search covers ([`search_plan`], within [`DIAGNOSIS_RANGE`] seconds) matches:
    /// the seed, digits or step differ.
    NoMatch,
    /// Not measured: the searches just before used up [`DIAGNOSIS_STEPS_PER_SECOND`] (each search
    /// costs some milliseconds).
    NotMeasured,
    /// The OTP is inside the window, but the server's clock is `behind` seconds behind the latest
    /// time a token login saw (it went ahead and was set back): tokens are refused until it catches
    /// up (see [`crate::replay`]). The server's clock moved, not the web app's.
    ServerClockBack {
        /// Seconds from now to the replay cache's high-water step (a whole number of OTP steps).
        behind: u64,
    },
}

/// How far either side of now an expired token's OTP is looked for: a day covers any timezone.
pub const DIAGNOSIS_RANGE: u64 = 86_400;
/// The most OTP codes one search computes, whatever `otp_step` is: a whole day either side at the
/// default `otp_step` of 30 s (5 761 codes, a few milliseconds). With `otp_step` under 30 s a day
/// would cost more (172 801 codes at 1 s), so the search then covers [`DIAGNOSIS_NEAR`] seconds
/// either side of now, and [`DIAGNOSIS_ZONE_STEPS`] steps either side of each whole quarter-hour
/// offset up to a day (where a wrong timezone puts a clock).
pub const DIAGNOSIS_MAX_CODES: u64 = 2 * (DIAGNOSIS_RANGE / 30) + 1;
/// Seconds either side of now that a search with `otp_step` under 30 s covers step by step: more
/// than a token's longest life at such a step (29 s × 11 steps) plus [`LATE_MARGIN`], so that a
/// token used late still reads as late.
pub const DIAGNOSIS_NEAR: u64 = 1200;
/// Steps either side of each quarter-hour offset (from 30 min on) that such a search covers.
pub const DIAGNOSIS_ZONE_STEPS: u64 = 8;
const QUARTER_HOUR: u64 = 900;
/// At most this many searches in one second of the verifier's `now` at the default `otp_step` (a
/// few milliseconds each), so that a user replaying old tokens cannot make the server search all
/// the time. A token whose OTP was searched for last (same code, same step) is not searched for again.
pub const DIAGNOSES_PER_SECOND: u32 = 5;
/// What the limit counts: OTP codes computed by searches, this many per second of `now` (five
/// searches of at most [`DIAGNOSIS_MAX_CODES`] each, whatever `otp_step` is; a long step searches
/// fewer codes).
pub const DIAGNOSIS_STEPS_PER_SECOND: u64 = DIAGNOSES_PER_SECOND as u64 * DIAGNOSIS_MAX_CODES;
/// A token minted in the past and refused at most this many seconds after it stopped being
/// accepted reads as used late rather than as a wrong clock ([`ClockDiagnosis::Late`]). Ten minutes
/// covers a page kept open or a slow fetch, and stays below the half-hour steps of timezones.
pub const LATE_MARGIN: u64 = 600;

/// The step distances a search covers at an `otp_step` of `step` seconds, ascending and disjoint,
/// and its cost in codes (at most [`DIAGNOSIS_MAX_CODES`]): every step within [`DIAGNOSIS_RANGE`]
/// where that fits, else every step within [`DIAGNOSIS_NEAR`] and [`DIAGNOSIS_ZONE_STEPS`] steps
/// around each quarter-hour offset from 30 min to [`DIAGNOSIS_RANGE`].
pub fn search_plan(step: u64) -> (Vec<core::ops::RangeInclusive<u64>>, u64) {
    let step = step.max(1);
    let max = DIAGNOSIS_RANGE / step;
    let cost = |plan: &[core::ops::RangeInclusive<u64>]| {
        plan.iter().map(|r| r.end().saturating_sub(*r.start()).saturating_add(1).saturating_mul(2)).sum::<u64>().saturating_sub(1)
    };
    let whole = vec![0..=max];
    if cost(&whole) <= DIAGNOSIS_MAX_CODES {
        let c = cost(&whole);
        return (whole, c);
    }
    let near = DIAGNOSIS_NEAR / step;
    let mut plan = vec![0..=near];
    for k in 2..=DIAGNOSIS_RANGE / QUARTER_HOUR {
        let centre = k * QUARTER_HOUR / step;
        let first = centre.saturating_sub(DIAGNOSIS_ZONE_STEPS).max(near.saturating_add(1));
        let last = centre.saturating_add(DIAGNOSIS_ZONE_STEPS).min(max);
        let after_previous = plan.last().map_or(0, |r| r.end().saturating_add(1));
        let first = first.max(after_previous);
        if first <= last {
            plan.push(first..=last);
        }
    }
    let c = cost(&plan);
    (plan, c)
}

impl fmt::Display for ClockDiagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ClockDiagnosis::Offset(s) if s < 0 => {
                write!(f, "minted about {} s in the past: check the web app's clock and timezone", s.unsigned_abs())
            }
            ClockDiagnosis::Offset(s) => write!(f, "minted about {s} s in the future: check the web app's clock and timezone"),
            // no parentheses: the fail2ban filter reads the explanation as `\([^()]*\)`
            ClockDiagnosis::Late { ago, accepted_for } => write!(
                f,
                "minted about {ago} s ago, and a token is accepted for at most {accepted_for} s after minting: most likely used \
                 late - a page kept open, a slow credentials fetch, an old token sent again; if every login fails so, check the \
                 web app's clock"
            ),
            ClockDiagnosis::NoMatch => {
                f.write_str("no OTP step within 24 h matches: the web app's otp_seed (or otp_digits, otp_step) probably differs")
            }
            ClockDiagnosis::NotMeasured => {
                f.write_str("clock offset not measured: too many expired tokens searched for just now")
            }
            ClockDiagnosis::ServerClockBack { behind } => write!(
                f,
                "the token is current, but this server's clock is about {behind} s behind the latest time a token login \
                 saw - the server's clock went back: token logins are refused until it catches up; the web app's clock is \
                 not at fault"
            ),
        }
    }
}

/// Codes the searches may compute, refilled by [`DIAGNOSIS_STEPS_PER_SECOND`] per second the clock
/// it is given moves forward, up to a second's worth or one search, whichever is more. The clock is
/// the caller's `now`: a clock that goes back (or stands still) adds nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchBudget {
    /// (the `now` of the last search asked for, codes left then)
    last: Option<(u64, u64)>,
}

impl SearchBudget {
    /// Whether a search computing `cost` codes fits the budget at `now`, and if so takes it.
    pub fn take(&mut self, now: u64, cost: u64) -> bool {
        let cap = DIAGNOSIS_STEPS_PER_SECOND.max(cost);
        let (seen, credit) = match self.last {
            Some((seen, credit)) if now > seen => {
                (now, credit.saturating_add((now - seen).saturating_mul(DIAGNOSIS_STEPS_PER_SECOND)).min(cap))
            }
            // back (or still): nothing added, and counted on from `now` (an hour back is not an hour
            // without searches)
            Some((_, credit)) => (now, credit),
            None => (now, cap),
        };
        let Some(left) = credit.checked_sub(cost) else {
            self.last = Some((seen, credit));
            return false;
        };
        self.last = Some((seen, left));
        true
    }
}

/// The clock search of one OTP configuration: its plan (fixed by `otp_step`), its budget, and the
/// last search's answer (the search that decided a refusal is asked for again by the log line).
#[derive(Debug)]
pub struct ClockSearch {
    /// The step distances one search covers, and what it costs in codes
    plan: (Vec<core::ops::RangeInclusive<u64>>, u64),
    budget: Mutex<SearchBudget>,
    /// The last search: (current step, OTP code as in `Otp::offset_of`, its result in steps)
    last: Mutex<Option<(u64, u64, Option<i64>)>>,
}

impl ClockSearch {
    /// The search for an `otp_step` of `step` seconds ([`search_plan`]).
    pub fn new(step: u64) -> Self {
        ClockSearch { plan: search_plan(step), budget: Mutex::new(SearchBudget::default()), last: Mutex::new(None) }
    }

    /// Where `otp` (outside the window of `otp` at `now`) matches, as a diagnosis; `NotMeasured`
    /// when the budget at `now` does not cover a search.
    pub fn diagnose(&self, otp_config: &Otp, otp: &[u8], now: u64) -> ClockDiagnosis {
        let current = otp_config.step_of(now);
        let mut padded = [0u8; 8];
        let Some(dst) = padded.get_mut(..otp.len()) else { return ClockDiagnosis::NoMatch };
        dst.copy_from_slice(otp);
        let code = u64::from_le_bytes(padded);
        let last = self.last.lock().ok().and_then(|l| *l);
        let steps = match last {
            Some((step, c, steps)) if step == current && bool::from(c.ct_eq(&code)) => steps,
            _ => {
                let (distances, cost) = &self.plan;
                let granted = self.budget.lock().map(|mut b| b.take(now, *cost)).unwrap_or(false);
                if !granted {
                    return ClockDiagnosis::NotMeasured;
                }
                let steps = otp_config.offset_of(otp, now, distances);
                if let Ok(mut l) = self.last.lock() {
                    *l = Some((current, code, steps));
                }
                steps
            }
        };
        let Some(steps) = steps else { return ClockDiagnosis::NoMatch };
        let step = otp_config.step_seconds();
        let offset = steps.saturating_mul(i64::try_from(step).unwrap_or(i64::MAX));
        let ago = offset.unsigned_abs();
        let accepted_for = step.saturating_mul(otp_config.skew().saturating_add(1));
        let whole_hours = ago >= 3600 && ago % 3600 == 0;
        if offset < 0 && ago <= accepted_for.saturating_add(LATE_MARGIN) && !whole_hours {
            ClockDiagnosis::Late { ago, accepted_for }
        } else {
            ClockDiagnosis::Offset(offset)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEARCH: u64 = DIAGNOSIS_MAX_CODES;

    #[test]
    fn the_budget_holds_a_seconds_worth_and_refills_with_the_given_clock() {
        let mut b = SearchBudget::default();
        let t = 1_700_000_000;
        for i in 0..DIAGNOSES_PER_SECOND {
            assert!(b.take(t, SEARCH), "search {i} of the first second");
        }
        assert!(!b.take(t, SEARCH), "over the second's budget");
        assert!(b.take(t + 1, SEARCH), "a second later");
        // a long pause fills it to one second's worth, no more
        let later = t + 3600;
        for _ in 0..DIAGNOSES_PER_SECOND {
            assert!(b.take(later, SEARCH));
        }
        assert!(!b.take(later, SEARCH));
    }

    #[test]
    fn a_clock_set_back_adds_nothing_and_counts_on_from_there() {
        let mut b = SearchBudget::default();
        let t = 1_700_000_000;
        while b.take(t, SEARCH) {}
        assert!(!b.take(t - 3600, SEARCH), "an hour back is not an hour of searches");
        assert!(b.take(t - 3599, SEARCH), "a second after the new `now`");
        assert!(b.take(0, SEARCH), "back again: what is left is still there");
        assert!(b.take(0, SEARCH) && b.take(0, SEARCH) && b.take(0, SEARCH));
        assert!(!b.take(0, SEARCH), "and no more");
    }

    #[test]
    fn one_search_dearer_than_a_second_still_runs_once_a_full_budget() {
        let mut b = SearchBudget::default();
        let dear = DIAGNOSIS_STEPS_PER_SECOND + 1;
        assert!(b.take(10, dear));
        assert!(!b.take(10, 1));
        assert!(!b.take(11, dear), "one second refills less than the search");
        assert!(b.take(12, dear));
    }
}
