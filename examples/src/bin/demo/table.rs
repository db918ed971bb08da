//! The live table printed every second, and the summary at the end.

use std::sync::atomic::Ordering;

use mesh_examples::stats::{Window, fmt_ms};
use mesh_retry::breaker::BreakerState;

use crate::load::{Board, zone_shares};
use crate::mesh::{
    BUDGET_MIN_PER_SEC, BUDGET_RATIO_PERCENT, BUDGET_WINDOW_SECS, CLOUDS, EndpointProbes,
    INSTANCES, LOCAL, Stack,
};

/// Prints the table of the second that just ended (and starts the next interval); returns the
/// answers per cloud in it. `up[i]`: whether backend `i` is still running.
pub(crate) fn print_second(second: u64, board: &Board, stack: &Stack, up: &[bool]) -> [u64; 2] {
    let mut requests = board.requests.rotate();
    let zones = board.zones.rotate();
    let windows: Vec<Window> = stack.probes.attempts.iter().map(|s| s.rotate()).collect();
    let attempts: u64 = windows.iter().map(Window::total).sum();
    let retries = attempts.saturating_sub(requests.total());
    let (ejected, endpoints, panic) =
        (stack.status)().map_or((0, 0, false), |s| (s.ejected, s.endpoints, s.panic));
    // The budget grants retries ≤ ratio × requests + min_per_sec × window over its window; it
    // exposes its counts, not what is left, so the rest is computed here from the same settings.
    let budget = &stack.budget;
    let budget_left = (budget.requests() * BUDGET_RATIO_PERCENT / 100
        + u64::from(BUDGET_MIN_PER_SEC) * BUDGET_WINDOW_SECS)
        .saturating_sub(budget.retries());
    let p99 = fmt_ms(requests.quantile(0.99));
    println!(
        "t={second:>3}s  zone in use: {}   requests {} (ok {}, failed {}, p99 {p99} ms)  retries {retries}  budget left {budget_left}  ejected {}/{}{}",
        zone_shares(zones),
        requests.total(),
        requests.success,
        requests.total() - requests.success,
        ejected,
        endpoints,
        if panic { "  PANIC" } else { "" },
    );
    println!(
        "        {:<9} {:<8} {:>6} {:>5} {:>5} {:>5} {:>7} {:>7}  breaker",
        "endpoint", "cloud", "share", "ok", "5xx", "err", "p50 ms", "p99 ms"
    );
    for (i, mut w) in windows.into_iter().enumerate() {
        let share = percent(w.total(), attempts);
        let (p50, p99) = (fmt_ms(w.quantile(0.5)), fmt_ms(w.quantile(0.99)));
        println!(
            "        {:<9} {:<8} {:>5.1}% {:>5} {:>5} {:>5} {:>7} {:>7}  {}{}",
            INSTANCES[i].name,
            CLOUDS[INSTANCES[i].cloud].name,
            share,
            w.success,
            w.failure + w.overloaded,
            w.error,
            p50,
            p99,
            breaker(stack.probes.breaker_state(i)),
            if up.get(i).copied().unwrap_or(true) {
                ""
            } else {
                "  (stopped)"
            },
        );
    }
    zones
}

fn breaker(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "closed",
        BreakerState::Open => "OPEN",
        BreakerState::HalfOpen => "half-open",
    }
}

/// Prints the run's summary; `last_zones` are the answers per cloud in the last second.
pub(crate) fn print_summary(
    board: &Board,
    probes: &EndpointProbes,
    last_zones: [u64; 2],
    kill_at: u64,
    scraped: Result<(usize, f64), String>,
    metrics_addr: &std::net::SocketAddr,
) {
    board.requests.rotate();
    let mut all = board.requests.total();
    let (p50, p99, p999) = (
        fmt_ms(all.quantile(0.5)),
        fmt_ms(all.quantile(0.99)),
        fmt_ms(all.quantile(0.999)),
    );
    println!(
        "\nsummary: {} requests sent, {} answered ok ({:.2} %), p50 {} ms, p99 {} ms, p99.9 {} ms (to the end of the body)",
        board.sent.load(Ordering::Relaxed),
        all.success,
        percent(all.success, all.total()),
        p50,
        p99,
        p999,
    );
    println!(
        "  {:<9} {:<8} {:>8} {:>7} {:>6} {:>6} {:>7} {:>7}  breaker",
        "endpoint", "cloud", "attempts", "ok", "5xx", "err", "p50 ms", "p99 ms"
    );
    let mut attempts = 0;
    for (i, stats) in probes.attempts.iter().enumerate() {
        stats.rotate();
        let mut w = stats.total();
        attempts += w.total();
        let (p50, p99) = (fmt_ms(w.quantile(0.5)), fmt_ms(w.quantile(0.99)));
        println!(
            "  {:<9} {:<8} {:>8} {:>7} {:>6} {:>6} {:>7} {:>7}  {}",
            INSTANCES[i].name,
            CLOUDS[INSTANCES[i].cloud].name,
            w.total(),
            w.success,
            w.failure + w.overloaded,
            w.error,
            p50,
            p99,
            breaker(probes.breaker_state(i)),
        );
    }
    let before = board.zones.phase(false);
    let after = board.zones.phase(true);
    println!("  zones before t={kill_at}s: {}", zone_shares(before));
    println!("  zones after  t={kill_at}s: {}", zone_shares(after));
    let last_total: u64 = last_zones.iter().sum();
    let remote_last = last_zones[1 - LOCAL];
    let failover = before[LOCAL] > 0 && last_total > 0 && remote_last * 10 >= last_total * 9;
    println!(
        "  failover: {} (last second: {})",
        if failover { "yes" } else { "no" },
        zone_shares(last_zones)
    );
    println!(
        "  retries: {} (attempts beyond the first, demo count)",
        attempts.saturating_sub(all.total())
    );
    match scraped {
        Ok((families, retries)) => println!(
            "  metrics: http://{metrics_addr}/metrics served {families} metric families; mesh_retry_retries total {retries}"
        ),
        Err(e) => println!("  metrics: scrape of http://{metrics_addr}/metrics failed: {e}"),
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}
