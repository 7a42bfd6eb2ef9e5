//! Running a server as another user than root: PostgreSQL refuses to run as root (`initdb`:
//! "cannot be run as root"; `postgres`: "root" execution ... is not permitted), and CI runs as
//! root. A root caller runs it as a system user instead (Debian's `postgres`, which the
//! `postgresql` package creates), hands it the server's directory and lets it through the
//! directories above.

use std::fs;
use std::io;
use std::path::Path;

use crate::error::InfraError;

/// Whether this process runs as root (its effective user id is 0). Linux: the owner of
/// `/proc/self` is the effective user; without `/proc`, not root as far as this knows (the
/// server's own refusal then says why it did not start).
pub(crate) fn is_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// The user and group id of `user` in `/etc/passwd`, if it is there.
pub(crate) fn lookup(user: &str) -> io::Result<Option<(u32, u32)>> {
    let passwd = fs::read_to_string("/etc/passwd")?;
    Ok(passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != user {
            return None;
        }
        let _password = fields.next()?;
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    }))
}

/// Makes `path` (a directory made for the server) belong to `uid`:`gid`.
pub(crate) fn hand_over(path: &Path, (uid, gid): (u32, u32)) -> Result<(), InfraError> {
    #[cfg(unix)]
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|source| InfraError::Io {
        what: format!("cannot give {} to user {uid}", path.display()),
        source,
    })?;
    #[cfg(not(unix))]
    let _ = (path, uid, gid);
    Ok(())
}

/// Lets `uid`:`gid` pass through every directory above `dir` (a test's 0700 temporary
/// directory would stop it): adds search permission for others (`o+x`: passing through to
/// names one knows, not listing) where neither the owner's nor the group's bits let it through.
pub(crate) fn let_through(dir: &Path, (uid, gid): (u32, u32)) -> Result<(), InfraError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let io_error = |what: String, source| InfraError::Io { what, source };
        let dir = fs::canonicalize(dir)
            .map_err(|e| io_error(format!("cannot resolve {}", dir.display()), e))?;
        for above in dir.ancestors().skip(1) {
            let meta = fs::metadata(above)
                .map_err(|e| io_error(format!("cannot read {}", above.display()), e))?;
            let mode = meta.mode();
            let passes = if meta.uid() == uid {
                mode & 0o100 != 0
            } else if meta.gid() == gid {
                mode & 0o010 != 0
            } else {
                mode & 0o001 != 0
            };
            if !passes {
                let permissions = fs::Permissions::from_mode((mode | 0o001) & 0o7777);
                fs::set_permissions(above, permissions).map_err(|e| {
                    io_error(
                        format!("cannot let user {uid} through {}", above.display()),
                        e,
                    )
                })?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, uid, gid);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_in_passwd_and_strangers_are_not() {
        assert_eq!(lookup("root").unwrap(), Some((0, 0)));
        assert_eq!(lookup("astroboids-no-such-user").unwrap(), None);
        assert_eq!(lookup("roo").unwrap(), None, "a prefix is not a name");
    }
}
