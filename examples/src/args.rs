//! A small command-line flag reader: `--name value`, `--name=value` and `--help`, with typed errors.
//!
//! The examples take a handful of flags; a full argument-parser dependency is not worth its build time.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

/// Why the command line could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum ArgError {
    /// `--help` was given; the caller prints its usage and exits successfully.
    Help,
    /// A flag that the program does not know.
    Unknown(String),
    /// A flag that needs a value came last.
    MissingValue(String),
    /// A flag's value could not be parsed.
    Invalid {
        /// The flag.
        flag: String,
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::Help => f.write_str("help requested"),
            ArgError::Unknown(flag) => write!(f, "unknown option {flag}"),
            ArgError::MissingValue(flag) => write!(f, "option {flag} needs a value"),
            ArgError::Invalid {
                flag,
                value,
                reason,
            } => write!(f, "invalid value {value:?} for {flag}: {reason}"),
        }
    }
}

impl std::error::Error for ArgError {}

/// The parsed options, or the end of the program: on `--help` prints `usage` and exits 0; on any
/// other error prints `program: <error>` and `usage` to stderr and exits 2 (a usage error).
pub fn or_exit<T>(parsed: Result<T, ArgError>, program: &str, usage: &str) -> T {
    match parsed {
        Ok(options) => options,
        Err(ArgError::Help) => {
            println!("{usage}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{program}: {e}\n\n{usage}");
            std::process::exit(2);
        }
    }
}

/// The flags of one command line, consumed one by one.
#[derive(Debug)]
pub struct Args {
    pairs: VecDeque<(String, Option<String>)>,
}

impl Args {
    /// Splits the arguments (without the program name) into flags and values.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, ArgError> {
        let mut pairs = VecDeque::new();
        let mut iter = args.into_iter().peekable();
        while let Some(arg) = iter.next() {
            if arg == "--help" || arg == "-h" {
                return Err(ArgError::Help);
            }
            if !arg.starts_with("--") {
                return Err(ArgError::Unknown(arg));
            }
            match arg.split_once('=') {
                Some((flag, value)) => pairs.push_back((flag.to_owned(), Some(value.to_owned()))),
                None => {
                    let value = iter.next_if(|next| !next.starts_with("--"));
                    pairs.push_back((arg, value));
                }
            }
        }
        Ok(Self { pairs })
    }

    /// Takes the value of `flag`, parsed, or `default` when the flag is absent.
    pub fn value<T>(&mut self, flag: &str, default: T) -> Result<T, ArgError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let Some(pos) = self.pairs.iter().position(|(f, _)| f == flag) else {
            return Ok(default);
        };
        let (flag, value) = self.pairs.remove(pos).expect("position is in range");
        let value = value.ok_or_else(|| ArgError::MissingValue(flag.clone()))?;
        value.parse().map_err(|e: T::Err| ArgError::Invalid {
            flag,
            value,
            reason: e.to_string(),
        })
    }

    /// Takes a flag without a value (`--json`): whether it was given. `--json=yes` or `--json yes`
    /// is an error, so a value meant for another flag is not silently dropped.
    pub fn flag(&mut self, flag: &str) -> Result<bool, ArgError> {
        let Some(pos) = self.pairs.iter().position(|(f, _)| f == flag) else {
            return Ok(false);
        };
        let (flag, value) = self.pairs.remove(pos).expect("position is in range");
        match value {
            None => Ok(true),
            Some(value) => Err(ArgError::Invalid {
                flag,
                value,
                reason: "this option takes no value".into(),
            }),
        }
    }

    /// Fails on the first flag nobody asked for.
    pub fn finish(mut self) -> Result<(), ArgError> {
        match self.pairs.pop_front() {
            Some((flag, _)) => Err(ArgError::Unknown(flag)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, ArgError> {
        Args::parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn reads_both_forms_and_defaults() {
        let mut a = args("--duration 7 --rate=300").unwrap();
        assert_eq!(a.value("--duration", 1u64), Ok(7));
        assert_eq!(a.value("--rate", 1u32), Ok(300));
        assert_eq!(a.value("--seed", 42u64), Ok(42));
        assert_eq!(a.finish(), Ok(()));
    }

    #[test]
    fn typed_errors() {
        assert_eq!(args("--help").unwrap_err(), ArgError::Help);
        assert_eq!(args("x").unwrap_err(), ArgError::Unknown("x".into()));
        let mut a = args("--rate").unwrap();
        assert_eq!(
            a.value("--rate", 1u32),
            Err(ArgError::MissingValue("--rate".into()))
        );
        let mut a = args("--rate fast").unwrap();
        assert!(matches!(
            a.value("--rate", 1u32),
            Err(ArgError::Invalid { .. })
        ));
        let a = args("--bogus 1").unwrap();
        assert_eq!(a.finish(), Err(ArgError::Unknown("--bogus".into())));
    }

    #[test]
    fn flags_without_values() {
        let mut a = args("--json --seed 3").unwrap();
        assert_eq!(a.flag("--json"), Ok(true));
        assert_eq!(a.flag("--detail"), Ok(false));
        assert_eq!(a.value("--seed", 1u64), Ok(3));
        assert_eq!(a.finish(), Ok(()));
        let mut a = args("--json yes").unwrap();
        assert!(matches!(a.flag("--json"), Err(ArgError::Invalid { .. })));
        let mut a = args("--json=1").unwrap();
        assert!(matches!(a.flag("--json"), Err(ArgError::Invalid { .. })));
    }
}
