//! Planning a fleet of snapshots: every core busy, results in the order of the hosts, and
//! memory bounded by a window of hosts in flight, not by the size of the fleet (100 000
//! snapshots stream through at a constant footprint, and the first result appears as soon
//! as the first host is planned).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, mpsc};

/// `work(i)` for every `i` in `0..n`, on `workers` threads that take the next host from a
/// shared counter (a slow host does not idle the others), and `emit(i, result)` on the
/// calling thread in the order of `i`. A worker never runs more than `window` hosts ahead
/// of the last one emitted, so at most `window` results wait in memory.
pub fn ordered<T: Send>(
    n: usize,
    workers: usize,
    window: usize,
    work: &(dyn Fn(usize) -> T + Sync),
    emit: &mut dyn FnMut(usize, T),
) {
    let window = window.max(1);
    let next = AtomicUsize::new(0);
    let emitted = Mutex::new(0usize);
    let moved = Condvar::new();
    let (tx, rx) = mpsc::channel::<(usize, T)>();
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, n.max(1)) {
            let tx = tx.clone();
            let (next, emitted, moved) = (&next, &emitted, &moved);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    {
                        let mut done = emitted.lock().unwrap_or_else(|p| p.into_inner());
                        while i >= *done + window {
                            done = moved.wait(done).unwrap_or_else(|p| p.into_inner());
                        }
                    }
                    if tx.send((i, work(i))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut waiting: BTreeMap<usize, T> = BTreeMap::new();
        let mut at = 0;
        for (i, r) in rx {
            waiting.insert(i, r);
            while let Some(r) = waiting.remove(&at) {
                emit(at, r);
                at += 1;
                *emitted.lock().unwrap_or_else(|p| p.into_inner()) = at;
                moved.notify_all();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_order_and_the_window_bounds_what_waits() {
        let mut seen = Vec::new();
        let max_waiting = std::sync::atomic::AtomicUsize::new(0);
        let in_flight = std::sync::atomic::AtomicUsize::new(0);
        ordered(
            500,
            4,
            8,
            &|i| {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max_waiting.fetch_max(now, Ordering::SeqCst);
                // The first host is slow: the others must not run away from it.
                if i == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                i * 2
            },
            &mut |i, r| {
                in_flight.fetch_sub(1, Ordering::SeqCst);
                seen.push((i, r));
            },
        );
        assert_eq!(seen, (0..500).map(|i| (i, i * 2)).collect::<Vec<_>>());
        assert!(
            max_waiting.load(Ordering::SeqCst) <= 8,
            "{}",
            max_waiting.load(Ordering::SeqCst)
        );
    }

    #[test]
    fn no_hosts_no_work() {
        let mut n = 0;
        ordered(0, 4, 8, &|i| i, &mut |_, _| n += 1);
        assert_eq!(n, 0);
    }
}
