//! Failed-login rate limiting, per client address and per user name, in bounded memory.
//!
//! After [`FAILURES`] failures within [`WINDOW_MS`] a key is locked out: for one minute the
//! first time, then twice as long each time again, up to [`MAX_LOCK_MS`]. Per address stops
//! one client guessing many names; per name stops many clients guessing one password. A
//! success clears only the name's record: an attacker with an account of their own must not
//! be able to reset the count of the address they guess from. Time is passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

pub const FAILURES: u32 = 5;
pub const WINDOW_MS: u64 = 5 * 60 * 1000;
const FIRST_LOCK_MS: u64 = 60 * 1000;
pub const MAX_LOCK_MS: u64 = 15 * 60 * 1000;
/// At 100 bytes an entry, at most a few MB however many addresses and names an attacker uses.
const MAX_ENTRIES: usize = 20_000;

/// Who failed: a client address or a user name (lower case, as names are unique that way).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Address(IpAddr),
    User(String),
}

#[derive(Clone, Copy, Debug)]
struct Record {
    window_start_ms: u64,
    failures: u32,
    /// How often this key was locked out; the next lock lasts 2^lockouts minutes.
    lockouts: u32,
    locked_until_ms: u64,
    last_failure_ms: u64,
}

#[derive(Debug, Default)]
pub struct Limiter {
    records: Mutex<HashMap<Key, Record>>,
}

impl Limiter {
    /// If any of `keys` is locked out at `now_ms`: the milliseconds until all are free.
    pub fn locked(&self, keys: &[Key], now_ms: u64) -> Option<u64> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        keys.iter()
            .filter_map(|k| records.get(k))
            .map(|r| r.locked_until_ms.saturating_sub(now_ms))
            .filter(|wait| *wait > 0)
            .max()
    }

    /// Counts a failure against every key.
    pub fn failed(&self, keys: &[Key], now_ms: u64) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.len() + keys.len() > MAX_ENTRIES {
            forget_old(&mut records, now_ms);
        }
        for key in keys {
            let record = records.entry(key.clone()).or_insert(Record {
                window_start_ms: now_ms,
                failures: 0,
                lockouts: 0,
                locked_until_ms: 0,
                last_failure_ms: now_ms,
            });
            if now_ms.saturating_sub(record.window_start_ms) > WINDOW_MS {
                record.window_start_ms = now_ms;
                record.failures = 0;
            }
            record.failures += 1;
            record.last_failure_ms = now_ms;
            if record.failures >= FAILURES {
                let lock = FIRST_LOCK_MS
                    .saturating_mul(1 << record.lockouts.min(16))
                    .min(MAX_LOCK_MS);
                record.locked_until_ms = now_ms + lock;
                record.lockouts += 1;
                record.failures = 0;
                record.window_start_ms = now_ms;
            }
        }
    }

    /// Forgets `key`'s failures (a successful login under that name).
    pub fn succeeded(&self, key: &Key) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Makes room: first drops records that no longer matter (no lock, no failure in the last
/// [`MAX_LOCK_MS`]: a lock-out's doubling is forgotten after that quiet time), then, if an
/// attacker filled the table with live records, the oldest half by last failure.
fn forget_old(records: &mut HashMap<Key, Record>, now_ms: u64) {
    records.retain(|_, r| {
        r.locked_until_ms > now_ms || now_ms.saturating_sub(r.last_failure_ms) < MAX_LOCK_MS
    });
    if records.len() > MAX_ENTRIES / 2 {
        let mut times: Vec<u64> = records.values().map(|r| r.last_failure_ms).collect();
        let (_, median, _) = times.select_nth_unstable(records.len() / 2);
        let median = *median;
        records.retain(|_, r| r.last_failure_ms > median);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;
    const MINUTE: u64 = 60 * 1000;

    fn user(name: &str) -> Key {
        Key::User(name.to_owned())
    }

    #[test]
    fn five_failures_lock_out_with_doubling_up_to_fifteen_minutes() {
        let limiter = Limiter::default();
        let keys = [user("anna")];
        for i in 0..FAILURES {
            assert_eq!(limiter.locked(&keys, T0), None, "before failure {i}");
            limiter.failed(&keys, T0);
        }
        assert_eq!(limiter.locked(&keys, T0), Some(MINUTE));
        assert_eq!(limiter.locked(&keys, T0 + MINUTE), None);
        let mut t = T0 + MINUTE;
        for expected in [2, 4, 8, 15, 15] {
            for _ in 0..FAILURES {
                limiter.failed(&keys, t);
            }
            assert_eq!(limiter.locked(&keys, t), Some(expected * MINUTE));
            t += expected * MINUTE;
        }
        limiter.succeeded(&keys[0]);
        assert_eq!(limiter.locked(&keys, t), None);
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_lock() {
        let limiter = Limiter::default();
        let keys = [user("anna")];
        for i in 0..3 * FAILURES {
            limiter.failed(&keys, T0 + u64::from(i) * 2 * MINUTE);
        }
        assert_eq!(limiter.locked(&keys, T0 + 30 * MINUTE), None);
    }

    #[test]
    fn an_address_and_a_name_count_apart() {
        let limiter = Limiter::default();
        let address = Key::Address([10, 0, 0, 9].into());
        for i in 0..FAILURES {
            limiter.failed(&[address.clone(), user(&format!("u{i}"))], T0);
        }
        assert!(limiter.locked(std::slice::from_ref(&address), T0).is_some());
        assert_eq!(limiter.locked(&[user("u0")], T0), None);
        assert!(limiter.locked(&[user("u0"), address], T0).is_some());
    }

    #[test]
    fn memory_stays_bounded_under_many_keys() {
        let limiter = Limiter::default();
        for i in 0..3 * MAX_ENTRIES as u64 {
            limiter.failed(&[user(&i.to_string())], T0 + i);
        }
        assert!(limiter.len() <= MAX_ENTRIES, "{}", limiter.len());
        // The newest records survive.
        limiter.failed(&[user("last")], T0 + 4 * MAX_ENTRIES as u64);
        assert!(limiter.len() <= MAX_ENTRIES);
    }
}
