//! The markdown report: method, one table per section, the ratios, and the microbenchmarks,
//! written between two markers in `BENCHMARKS.md` so that a new run replaces the previous one and
//! hand-written text around it stays.

use std::fmt::Write as _;

use crate::callgrind::CallgrindRun;
use crate::micro::MicroResult;
use crate::stats::{
    self, HandshakeRun, IdleRun, LoadRun, Pct, Spread, cpu_per_100k, ratio, spread,
};
use crate::targets::Target;

/// Start of the generated section.
pub(crate) const BEGIN: &str =
    "<!-- bench-e2e:begin (generated; a new run replaces everything up to the end marker) -->";
/// End of the generated section.
pub(crate) const END: &str = "<!-- bench-e2e:end -->";

/// What the run was and where.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    /// `quick` or `full`.
    pub(crate) mode: String,
    /// The command line.
    pub(crate) command: String,
    /// UTC date and time.
    pub(crate) date: String,
    /// (label, value) rows about the machine and the tools.
    pub(crate) environment: Vec<(String, String)>,
    /// The run's parameters, as prose lines.
    pub(crate) parameters: Vec<String>,
    /// Observations made during the run (thread counts, warnings).
    pub(crate) notes: Vec<String>,
}

/// Everything measured.
#[derive(Debug, Default)]
pub(crate) struct Results {
    /// Fixed-rate runs.
    pub(crate) fixed: Vec<LoadRun>,
    /// Closed-loop runs.
    pub(crate) ceiling: Vec<LoadRun>,
    /// Handshake runs.
    pub(crate) handshakes: Vec<HandshakeRun>,
    /// Idle-connection levels.
    pub(crate) idle: Vec<IdleRun>,
    /// Microbenchmark tables.
    pub(crate) micro: Vec<MicroResult>,
    /// Counts per request under callgrind.
    pub(crate) callgrind: Vec<CallgrindRun>,
    /// Rates of the fixed-rate part, in order.
    pub(crate) rates: Vec<u32>,
}

/// `median (min–max)` with `digits` decimals; just the median when the range is a single value.
pub(crate) fn cell(s: Option<Spread>, scale: f64, digits: usize) -> String {
    match s {
        None => "–".to_owned(),
        Some(s) if s.median.is_nan() => "–".to_owned(),
        Some(s) if s.min == s.max => format!("{:.*}", digits, s.median * scale),
        Some(s) => format!(
            "{:.*} ({:.*}–{:.*})",
            digits,
            s.median * scale,
            digits,
            s.min * scale,
            digits,
            s.max * scale
        ),
    }
}

/// A ratio as `1.23×`, or `n/a` when it would mean nothing.
pub(crate) fn ratio_cell(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}×"))
}

fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    spread(values).map_or(f64::NAN, |s| s.median)
}

/// Median added latency (seconds) of `target` at `rate`.
fn added_median(runs: &[LoadRun], target: Target, rate: u32, pct: Pct) -> f64 {
    median(stats::added(runs, target, rate, pct))
}

/// Median proxy CPU seconds per 100k requests of `target` at `rate` (`None`: the ceiling).
fn cpu_median(runs: &[LoadRun], target: Target, rate: Option<u32>) -> f64 {
    median(
        stats::runs_of(runs, target, rate)
            .iter()
            .map(|r| cpu_per_100k(r.proxy_cpu, r.oha.ok)),
    )
}

fn load_row(out: &mut String, runs: &[LoadRun], target: Target, rate: Option<u32>) {
    let rs = stats::runs_of(runs, target, rate);
    if rs.is_empty() {
        return;
    }
    let col = |f: &dyn Fn(&LoadRun) -> f64| spread(rs.iter().map(|r| f(r)));
    let us = 1e6;
    let mut row = format!("| {target} | {} |", cell(col(&|r| r.oha.rps), 1.0, 0));
    for pct in Pct::ALL {
        row += &format!(" {} |", cell(col(&|r| pct.of(&r.oha)), us, 0));
    }
    if let Some(rate) = rate {
        for pct in Pct::ALL {
            let added = stats::added(runs, target, rate, pct);
            let text = if target == Target::Direct {
                "–".to_owned()
            } else {
                cell(spread(added), us, 0)
            };
            row += &format!(" {text} |");
        }
    }
    let proxy_cpu = if target == Target::Direct {
        "–".to_owned()
    } else {
        cell(col(&|r| cpu_per_100k(r.proxy_cpu, r.oha.ok)), 1.0, 2)
    };
    let _ = writeln!(
        out,
        "{row} {proxy_cpu} | {} | {} | {} |",
        cell(col(&|r| cpu_per_100k(r.backend_cpu, r.oha.ok)), 1.0, 2),
        cell(col(&|r| r.peak_rss_kib as f64), 1.0 / 1024.0, 1),
        rs.iter().map(|r| r.oha.errors).sum::<u64>()
    );
}

/// How a baseline is named in the ratio headings and sentences.
fn baseline_name(target: Target) -> &'static str {
    match target {
        Target::Floor => "hyper-floor",
        Target::Haproxy => "HAProxy",
        Target::Nginx => "nginx",
        Target::Direct => "direct",
        Target::Sidecar => "mesh-sidecar",
    }
}

/// mesh-sidecar's `value` over each baseline's, in the order of [`Target::BASELINES`].
fn ratios(value: impl Fn(Target) -> f64) -> [String; 3] {
    Target::BASELINES.map(|t| ratio_cell(ratio(value(Target::Sidecar), value(t))))
}

/// `ratios` in a sentence: `1.20× of hyper-floor's, 1.50× of HAProxy's and 1.60× of nginx's`.
fn ratio_sentence(value: impl Fn(Target) -> f64) -> String {
    let [floor, haproxy, nginx] = ratios(value);
    format!("{floor} of hyper-floor's, {haproxy} of HAProxy's and {nginx} of nginx's")
}

fn fixed_section(out: &mut String, r: &Results) {
    out.push_str("## Fixed-rate latency and cost\n\n");
    for &rate in &r.rates {
        let _ = writeln!(out, "### {rate} req/s\n");
        out.push_str(
            "| target | achieved req/s | p50 µs | p99 µs | p99.9 µs | added p50 µs | added p99 µs | added p99.9 µs | proxy CPU-s / 100k req | backend CPU-s / 100k req | peak RSS MiB | errors |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for target in Target::ALL {
            load_row(out, &r.fixed, target, Some(rate));
        }
        out.push('\n');
    }
    out.push_str("### Ratios: mesh-sidecar / hyper-floor, / HAProxy and / nginx\n\n");
    let names = Target::BASELINES.map(baseline_name);
    let _ = writeln!(
        out,
        "| rate req/s | {} | {} |\n|---|{}",
        names.map(|n| format!("added p99: ours / {n}")).join(" | "),
        names
            .map(|n| format!("CPU per 100k: ours / {n}"))
            .join(" | "),
        "---|".repeat(2 * names.len()),
    );
    for &rate in &r.rates {
        let p99 = |t| added_median(&r.fixed, t, rate, Pct::P99);
        let cpu = |t| cpu_median(&r.fixed, t, Some(rate));
        let _ = writeln!(
            out,
            "| {rate} | {} | {} |",
            ratios(p99).join(" | "),
            ratios(cpu).join(" | "),
        );
    }
    out.push_str("\nRatios are of medians over the repeats; `n/a` where the denominator is zero or negative (an added latency within the noise).\n\n");
}

fn ceiling_section(out: &mut String, r: &Results) {
    out.push_str("## Closed-loop ceiling\n\n");
    out.push_str(
        "| target | req/s | p50 µs | p99 µs | p99.9 µs | proxy CPU-s / 100k req | backend CPU-s / 100k req | peak RSS MiB | errors |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for target in Target::ALL {
        load_row(out, &r.ceiling, target, None);
    }
    let rps = |t| {
        median(
            stats::runs_of(&r.ceiling, t, None)
                .iter()
                .map(|x| x.oha.rps),
        )
    };
    let [floor, haproxy, nginx] = ratios(rps);
    let _ = writeln!(
        out,
        "\nCeiling ratio (req/s, higher is better): ours / hyper-floor {floor}, ours / HAProxy {haproxy}, ours / nginx {nginx}.\n",
    );
}

fn handshake_section(out: &mut String, r: &Results) {
    out.push_str("## mTLS handshakes without keep-alive\n\n");
    out.push_str(
        "| target | handshakes/s | proxy CPU-ms / handshake | errors |\n|---|---|---|---|\n",
    );
    let of = |t: Target| r.handshakes.iter().filter(move |h| h.target == t);
    for target in [Target::Sidecar, Target::Haproxy] {
        if of(target).next().is_none() {
            continue;
        }
        let rate = spread(of(target).map(|h| h.completed as f64 / h.seconds));
        let cpu = spread(of(target).map(|h| {
            if h.completed == 0 {
                f64::NAN
            } else {
                h.proxy_cpu / h.completed as f64
            }
        }));
        let errors: u64 = of(target).map(|h| h.errors).sum();
        let _ = writeln!(
            out,
            "| {target} | {} | {} | {errors} |",
            cell(rate, 1.0, 0),
            cell(cpu, 1000.0, 3)
        );
    }
    let rate = |t| median(of(t).map(|h| h.completed as f64 / h.seconds));
    let cpu = |t| median(of(t).map(|h| h.proxy_cpu / h.completed.max(1) as f64));
    let _ = writeln!(
        out,
        "\nHandshake ratio ours / HAProxy: {} the handshakes per second, {} the CPU per handshake.\n",
        ratio_cell(ratio(rate(Target::Sidecar), rate(Target::Haproxy))),
        ratio_cell(ratio(cpu(Target::Sidecar), cpu(Target::Haproxy))),
    );
}

fn idle_section(out: &mut String, r: &Results) {
    out.push_str("## Memory per idle connection\n\n");
    out.push_str(
        "| proxy | connections | held open | RSS before MiB | RSS with them, 2 s MiB | RSS with them, end of hold MiB | KiB per connection, 2 s | KiB per connection, end of hold |\n|---|---|---|---|---|---|---|---|\n",
    );
    let kib = |k: Option<f64>| k.map_or("–".to_owned(), |k| format!("{k:.1}"));
    for run in &r.idle {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} |",
            run.target,
            run.connections,
            run.held,
            run.rss_before_kib as f64 / 1024.0,
            run.rss_after_kib as f64 / 1024.0,
            run.rss_held_kib as f64 / 1024.0,
            kib(run.kib_per_connection()),
            kib(run.kib_per_connection_held()),
        );
    }
    out.push('\n');
}

/// `v` rounded, its thousands set apart by spaces (`38 461`).
fn grouped(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    if v < -0.5 { format!("-{out}") } else { out }
}

/// A row of the callgrind table: its label, and how to read it from a run.
type CallgrindRow = (&'static str, fn(&CallgrindRun) -> f64);

fn callgrind_section(out: &mut String, r: &Results) {
    let run = |t| r.callgrind.iter().find(|c| c.target == t);
    let (floor, ours) = (run(Target::Floor), run(Target::Sidecar));
    out.push_str(
        "## Instructions and cache misses per proxied request (callgrind)

",
    );
    out.push_str(
        "| per proxied request | hyper-floor | mesh-sidecar | mesh-sidecar / hyper-floor |
|---|---:|---:|---:|
",
    );
    let rows: [CallgrindRow; 6] = [
        ("instructions", |c| c.event("Ir")),
        ("L1 instruction misses", |c| c.event("I1mr")),
        ("L1 data read misses", |c| c.event("D1mr")),
        ("L1 data write misses", |c| c.event("D1mw")),
        ("last-level misses", |c| {
            c.event("ILmr") + c.event("DLmr") + c.event("DLmw")
        }),
        (
            "cycle estimate (instructions + 10 × L1 misses + 100 × last-level misses)",
            CallgrindRun::cycle_estimate,
        ),
    ];
    for (label, value) in rows {
        let f = floor.map(value);
        let o = ours.map(value);
        // A ratio of counts below one per request (last-level misses, once warm) is noise.
        let r = match (o, f) {
            (Some(o), Some(f)) if f >= 1.0 => format!("{:.2}×", o / f),
            _ => "–".to_owned(),
        };
        let cell = |v: Option<f64>| match v {
            None => "–".to_owned(),
            Some(v) if v < 10.0 => format!("{v:.2}"),
            Some(v) => grouped(v),
        };
        let _ = writeln!(out, "| {label} | {} | {} | {r} |", cell(f), cell(o));
    }
    out.push('\n');
}

fn micro_section(out: &mut String, r: &Results) {
    out.push_str("## Microbenchmarks (divan, `cargo bench`)\n\nThe tables as divan printed them (time per iteration; `alloc`/`dealloc` rows from its allocation profiler).\n\n");
    for m in &r.micro {
        let _ = writeln!(out, "### {}\n\n```text\n{}\n```\n", m.name, m.output);
    }
}

fn closing_note(out: &mut String, r: &Results) {
    out.push_str("## Summary: mesh-sidecar relative to hyper-floor, HAProxy and nginx\n\n");
    for &rate in &r.rates {
        let p99 = |t| added_median(&r.fixed, t, rate, Pct::P99);
        let cpu = |t| cpu_median(&r.fixed, t, Some(rate));
        let _ = writeln!(
            out,
            "- {rate} req/s: added p99 {}; CPU per request {}.",
            ratio_sentence(p99),
            ratio_sentence(cpu),
        );
    }
    out.push('\n');
}

/// The generated section, markers included.
pub(crate) fn render(meta: &Meta, r: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{BEGIN}\n");
    let _ = writeln!(
        out,
        "# End-to-end comparison: {} run of {}\n",
        meta.mode, meta.date
    );
    if meta.mode == "quick" {
        out.push_str("> **Quick (smoke) run**: short runs and one repeat, to check the tooling. Its figures are not a measurement to quote.\n\n");
    }
    let _ = writeln!(out, "Command: `{}`\n", meta.command);
    out.push_str("| | |\n|---|---|\n");
    for (k, v) in &meta.environment {
        let _ = writeln!(out, "| {k} | {} |", v.replace('|', "\\|"));
    }
    out.push_str("\n## Method\n\n");
    for p in &meta.parameters {
        let _ = writeln!(out, "- {p}");
    }
    for n in &meta.notes {
        let _ = writeln!(out, "- {n}");
    }
    out.push('\n');
    if !r.fixed.is_empty() {
        closing_note(&mut out, r);
        fixed_section(&mut out, r);
    }
    if !r.ceiling.is_empty() {
        ceiling_section(&mut out, r);
    }
    if !r.handshakes.is_empty() {
        handshake_section(&mut out, r);
    }
    if !r.idle.is_empty() {
        idle_section(&mut out, r);
    }
    if !r.callgrind.is_empty() {
        callgrind_section(&mut out, r);
    }
    if !r.micro.is_empty() {
        micro_section(&mut out, r);
    }
    let _ = writeln!(out, "{END}");
    out
}

/// `existing` with its generated section replaced by `section` (appended if there is none).
pub(crate) fn splice(existing: &str, section: &str) -> String {
    if let (Some(b), Some(e)) = (existing.find(BEGIN), existing.find(END))
        && b < e
    {
        let after = &existing[e + END.len()..];
        let after = after.strip_prefix('\n').unwrap_or(after);
        return format!("{}{section}{after}", &existing[..b]);
    }
    let mut out = existing.trim_end().to_owned();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(section);
    out
}

/// The intro of a new `BENCHMARKS.md`.
pub(crate) const INTRO: &str = "# Benchmarks\n\n\
The section below is written by `bench-e2e` (examples/src/bin/bench-e2e): run \
`cargo run --release -p mesh-examples --bin bench-e2e -- --help` for what it measures and how. \
A new run replaces that section; text outside the markers is kept.\n";

/// `(year, month, day, hour, minute)` in UTC of a Unix time (days-to-civil over the proleptic
/// Gregorian calendar, counted in 400-year eras of 146 097 days).
pub(crate) fn utc(unix_seconds: u64) -> (i64, u32, u32, u32, u32) {
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (secs / 3600) as u32,
        (secs % 3600 / 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::OhaSummary;

    #[test]
    fn cells_and_ratios() {
        assert_eq!(
            cell(spread([0.0001, 0.0002, 0.0003]), 1e6, 0),
            "200 (100–300)"
        );
        assert_eq!(cell(spread([1.5]), 1.0, 2), "1.50");
        assert_eq!(cell(None, 1.0, 2), "–");
        assert_eq!(ratio_cell(Some(1.234)), "1.23×");
        assert_eq!(ratio_cell(None), "n/a");
    }

    #[test]
    fn the_section_is_replaced_and_the_rest_kept() {
        let first = splice(INTRO, &format!("{BEGIN}\nold\n{END}\n"));
        assert!(first.starts_with("# Benchmarks") && first.contains("old"));
        let hand = format!("{first}\n## Notes by hand\n");
        let second = splice(&hand, &format!("{BEGIN}\nnew\n{END}\n"));
        assert!(second.contains("new") && !second.contains("old"));
        assert!(second.starts_with("# Benchmarks") && second.ends_with("## Notes by hand\n"));
        assert_eq!(second.matches(BEGIN).count(), 1);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), (1970, 1, 1, 0, 0));
        assert_eq!(utc(951_782_400), (2000, 2, 29, 0, 0));
        assert_eq!(utc(1_700_000_000), (2023, 11, 14, 22, 13));
    }

    fn run(target: Target, repeat: u32, p99_us: f64, cpu: f64) -> LoadRun {
        LoadRun {
            target,
            rate: Some(1000),
            repeat,
            oha: OhaSummary {
                p50: 50e-6,
                p99: p99_us * 1e-6,
                p999: 2.0 * p99_us * 1e-6,
                ok: 100_000,
                errors: 0,
                rps: 1000.0,
            },
            proxy_cpu: cpu,
            backend_cpu: 0.5,
            peak_rss_kib: 10 * 1024,
        }
    }

    #[test]
    fn the_callgrind_table_gives_counts_per_request_and_ratios() {
        let per = |ir, i1| [ir, 0.0, 0.0, i1, 100.0, 200.0, 0.0, 0.0, 1.0];
        let results = Results {
            callgrind: vec![
                CallgrindRun {
                    target: Target::Sidecar,
                    per_request: per(38_461.0, 2_834.0),
                },
                CallgrindRun {
                    target: Target::Floor,
                    per_request: per(32_375.0, 1_975.0),
                },
            ],
            ..Results::default()
        };
        let text = render(&Meta::default(), &results);
        assert!(
            text.contains("| instructions | 32 375 | 38 461 | 1.19× |"),
            "{text}"
        );
        assert!(
            text.contains("| L1 instruction misses | 1 975 | 2 834 | 1.43× |"),
            "{text}"
        );
        // 32 375 + 10 × (1 975 + 300) + 100 × 1 = 55 225; 38 461 + 10 × 3 134 + 100 = 69 901.
        assert!(
            text.contains("last-level misses) | 55 225 | 69 901 | 1.27× |"),
            "{text}"
        );
        // Without the floor's run, no ratio.
        let alone = Results {
            callgrind: vec![results.callgrind[0].clone()],
            ..Results::default()
        };
        assert!(render(&Meta::default(), &alone).contains("| instructions | – | 38 461 | – |"));
        // Fewer than one per request: two decimals, no ratio.
        assert!(
            text.contains("| last-level misses | 1.00 | 1.00 | 1.00× |"),
            "{text}"
        );
        assert_eq!(grouped(999.4), "999");
        assert_eq!(grouped(1_000.0), "1 000");
        assert_eq!(grouped(1_234_567.0), "1 234 567");
    }

    #[test]
    fn the_report_gives_added_latency_and_ratios() {
        let mut fixed = Vec::new();
        for repeat in 1..=3 {
            fixed.push(run(Target::Direct, repeat, 100.0, 0.0));
            fixed.push(run(Target::Sidecar, repeat, 160.0, 2.0));
            fixed.push(run(Target::Floor, repeat, 150.0, 1.6));
            fixed.push(run(Target::Haproxy, repeat, 130.0, 1.0));
            fixed.push(run(Target::Nginx, repeat, 120.0, 0.5));
        }
        let results = Results {
            fixed,
            rates: vec![1000],
            ..Results::default()
        };
        let meta = Meta {
            mode: "quick".into(),
            ..Meta::default()
        };
        let text = render(&meta, &results);
        assert!(text.contains("Quick (smoke) run"));
        // Added p99: 60 µs ours, 50 the floor, 30 HAProxy, 20 nginx; CPU per 100k: 2, 1.6, 1,
        // 0.5 s.
        assert!(
            text.contains("| 1000 | 1.20× | 2.00× | 3.00× | 1.25× | 2.00× | 4.00× |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| rate req/s | added p99: ours / hyper-floor | added p99: ours / HAProxy |"
            ),
            "{text}"
        );
        assert!(
            text.contains("- 1000 req/s: added p99 1.20× of hyper-floor's, 2.00× of HAProxy's and 3.00× of nginx's; CPU per request 1.25× of hyper-floor's"),
            "{text}"
        );
        assert!(
            text.contains(
                "| hyper-floor | 1000 | 50 | 150 | 300 | 0 | 50 | 100 | 1.60 | 0.50 | 10.0 | 0 |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| mesh-sidecar | 1000 | 50 | 160 | 320 | 0 | 60 | 120 | 2.00 | 0.50 | 10.0 | 0 |"
            ),
            "{text}"
        );
        assert!(text.starts_with(BEGIN) && text.trim_end().ends_with(END));
    }
}
