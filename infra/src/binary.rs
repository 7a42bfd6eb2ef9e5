//! Which binary runs: a path, or a bare name looked up on `PATH`; `$ASTROBOIDS_*` overrides.

use std::path::{Component, Path, PathBuf};

/// `$var` if set and not empty, else `default` (looked up on `PATH`).
pub(crate) fn binary_from_env(var: &str, default: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from(default),
    }
}

/// A name without a directory part, which `Command` looks up on `PATH`.
pub(crate) fn is_bare_name(binary: &Path) -> bool {
    let mut components = binary.components();
    matches!(components.next(), Some(Component::Normal(_))) && components.next().is_none()
}

/// Whether `binary` can be run: a bare name found on `PATH`, or a path to a file.
pub(crate) fn exists(binary: &Path) -> bool {
    if is_bare_name(binary) {
        find_on_path(binary).is_some()
    } else {
        binary.is_file()
    }
}

pub(crate) fn find_on_path(name: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_are_looked_up_on_path() {
        assert!(is_bare_name(Path::new("etcd")));
        assert!(!is_bare_name(Path::new("./etcd")));
        assert!(!is_bare_name(Path::new("/usr/bin/etcd")));
        assert!(!is_bare_name(Path::new("bin/etcd")));
        assert!(exists(Path::new("sh")), "no `sh` on PATH");
        assert!(!exists(Path::new("astroboids-no-such-binary")));
        assert!(!exists(Path::new("/no/such/dir/sh")));
    }
}
