//! The command line and the `--help` text.

use std::path::PathBuf;

use mesh_examples::args::{ArgError, Args};

/// What `soak --help` prints.
pub(crate) const USAGE: &str = "\
soak: a long fixed-rate run through two tiers of mesh-sidecar while the mesh changes under it

USAGE:
    cargo build -p mesh-examples --bin soak --bin mesh-sidecar --bin backend
    target/debug/soak [OPTIONS]
    (or the same with --release and target/release/soak; soak starts the mesh-sidecar and
    backend binaries found next to its own executable)

WHAT IT DOES
    Starts three backends, a sidecar B1..B3 in front of each (mTLS inbound) and a sidecar A
    whose outbound service `orders` finds B1..B3 through an endpoint file (file discovery,
    checked every second). An in-process open-loop client sends GETs to A's outbound listener
    at a fixed rate, 80 % over HTTP/1.1 and 20 % over HTTP/2 (mesh-core's HttpClient), each
    with a 20 s deadline. Meanwhile:
      every  5 s  the endpoint file is rewritten (write, then rename): in turn one of B1..B3 is
                  left out, then all three are listed again
      every 20 s  one backend is killed (SIGKILL) and restarted on the same port
      every 60 s  every sidecar gets a new leaf certificate from a new CA and a new trust bundle
                  (previous, current and next CA), swapped in at once by renaming a symlink
      every 30 s  RSS and open fds of every sidecar and the request counts are recorded
    After the load: a quiet period of 40 s (longer than the 30 s after which the sidecars close
    idle connections), then the fds are counted again.

    Lost request: a transport error or no answer within the deadline (every answer with a
    status, 5xx included, is not lost). Unsent request: its deadline passed while it still
    waited for one of the load's own 512 HTTP/1.1 connections (the load did not keep up; not
    counted as lost, but the run does not pass). Panics: lines with `panicked` in the
    sidecars' stderr.

    Targets: RSS drift < 5 % per sidecar, (RSS at the end of the load − RSS at the first sample
    at or after the warm-up) / RSS at that sample; open fds after the quiet period no more than
    before the load; zero panics; zero unsent and zero lost requests. Exit status 0 when all pass, 1 otherwise.

OPTIONS:
    --duration-secs <N>   length of the load, in seconds (default 600)
    --rate <N>            requests per second (default 400)
    --warmup-secs <N>     the sample at or after this time is the RSS baseline (default 60)
    --seed <N>            seed of the HTTP/1.1 or HTTP/2 choice per request and of the
                          sidecars' jitter (default 1)
    --out <FILE>          also write the markdown report to FILE (it is always printed)
    --keep-work           keep the temporary directory with configs, certificates and logs
    --help                print this text";

/// Everything `--help` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// Length of the load, in seconds.
    pub(crate) duration_secs: u64,
    /// Requests per second.
    pub(crate) rate: u64,
    /// The first sample at or after this is the RSS baseline.
    pub(crate) warmup_secs: u64,
    /// Seed of the per-request choices and of the sidecars.
    pub(crate) seed: u64,
    /// Where the report is also written.
    pub(crate) out: Option<PathBuf>,
    /// Keep the work directory.
    pub(crate) keep_work: bool,
    /// The arguments as given, for the report.
    pub(crate) command_line: String,
}

impl Options {
    /// Reads the command line (without the program name).
    pub(crate) fn parse(argv: Vec<String>) -> Result<Self, ArgError> {
        let command_line = argv.join(" ");
        let mut args = Args::parse(argv)?;
        let duration_secs: u64 = args.value("--duration-secs", 600)?;
        let rate: u64 = args.value("--rate", 400)?;
        let warmup_secs: u64 = args.value("--warmup-secs", 60)?;
        let seed: u64 = args.value("--seed", 1)?;
        let out: String = args.value("--out", String::new())?;
        let keep_work = args.flag("--keep-work")?;
        args.finish()?;
        let invalid = |flag: &str, value: u64, reason: &str| ArgError::Invalid {
            flag: flag.into(),
            value: value.to_string(),
            reason: reason.into(),
        };
        if duration_secs == 0 {
            return Err(invalid("--duration-secs", 0, "must be at least 1"));
        }
        if rate == 0 || rate > 100_000 {
            return Err(invalid("--rate", rate, "must be between 1 and 100000"));
        }
        if warmup_secs >= duration_secs {
            return Err(invalid(
                "--warmup-secs",
                warmup_secs,
                "must be shorter than --duration-secs",
            ));
        }
        Ok(Self {
            duration_secs,
            rate,
            warmup_secs,
            seed,
            out: (!out.is_empty()).then(|| PathBuf::from(out)),
            keep_work,
            command_line,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Options, ArgError> {
        Options::parse(s.split_whitespace().map(str::to_owned).collect())
    }

    #[test]
    fn defaults_and_overrides() {
        let d = parse("").unwrap();
        assert_eq!(
            (d.duration_secs, d.rate, d.warmup_secs, d.seed),
            (600, 400, 60, 1)
        );
        assert_eq!(d.out, None);
        let o =
            parse("--duration-secs 60 --rate 300 --warmup-secs 20 --seed 7 --out r.md").unwrap();
        assert_eq!(
            (o.duration_secs, o.rate, o.warmup_secs, o.seed),
            (60, 300, 20, 7)
        );
        assert_eq!(o.out, Some(PathBuf::from("r.md")));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(matches!(parse("--rate 0"), Err(ArgError::Invalid { .. })));
        assert!(matches!(
            parse("--duration-secs 0"),
            Err(ArgError::Invalid { .. })
        ));
        assert!(matches!(
            parse("--duration-secs 30 --warmup-secs 60"),
            Err(ArgError::Invalid { .. })
        ));
        assert!(matches!(
            parse("--rate fast"),
            Err(ArgError::Invalid { .. })
        ));
        assert_eq!(
            parse("--bogus 1").unwrap_err(),
            ArgError::Unknown("--bogus".into())
        );
        assert_eq!(parse("--help").unwrap_err(), ArgError::Help);
    }
}
