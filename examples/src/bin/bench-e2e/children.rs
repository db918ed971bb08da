//! The benchmark's children: [`mesh_examples::children`] with a raised open-file limit, since
//! the targets hold 10 000 idle connections plus their upstream side.

pub(crate) use mesh_examples::children::{
    KillAllOnDrop, Proc, Spawn, find_in_path, kill_all_on_signal,
};

use crate::procfs;

/// The open-file limit wanted for this process and every child (10 000 idle connections plus
/// their upstream side, with room). Where the hard limit is lower and cannot be raised, children
/// get the hard limit ([`nofile`]).
pub(crate) const NOFILE_WANTED: u64 = 65_536;

/// The open-file limit children run with: [`NOFILE_WANTED`], or this process's soft limit if
/// lower (set by `setup::raise_own_nofile` as high as allowed).
pub(crate) fn nofile() -> u64 {
    procfs::own_nofile().0.min(NOFILE_WANTED)
}

/// How every child of the benchmark starts: `program` with the open-file limit of [`nofile`],
/// logging its stderr into `log_dir/<name>.log`.
pub(crate) fn spawn(
    name: &str,
    program: impl Into<std::ffi::OsString>,
    log_dir: &std::path::Path,
) -> Spawn {
    Spawn::new(name, program, log_dir).nofile(nofile())
}
