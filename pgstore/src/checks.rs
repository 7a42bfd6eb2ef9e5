//! Arguments checked before anything is sent: names, sizes and numbers that must fit a BIGINT.

use crate::error::{Result, StoreError};

/// Names (users, scripts, worlds): 1 to this many bytes of `[A-Za-z0-9_.-]`, as the world
/// store's (`storage::StoreLimits::max_name_bytes`) and the schema's checks say.
pub const MAX_NAME_BYTES: usize = 64;

/// A PHC string's length in the schema.
pub const MAX_PASSWORD_PHC_BYTES: usize = 512;

/// The largest value a BIGINT column holds.
const MAX_I64: u64 = i64::MAX as u64;

pub(crate) fn name(what: &'static str, value: &str) -> Result<()> {
    let reason = if value.is_empty() {
        Some("it is empty".to_string())
    } else if value.len() > MAX_NAME_BYTES {
        Some(format!(
            "it is {} bytes; the limit is {MAX_NAME_BYTES}",
            value.len()
        ))
    } else {
        value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .map(|c| format!("{c:?} is not allowed (use letters, digits, _ . -)"))
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidName {
            what,
            value: value.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

pub(crate) fn size(what: &'static str, bytes: usize, limit: usize) -> Result<()> {
    if bytes > limit {
        return Err(StoreError::TooLarge { what, bytes, limit });
    }
    Ok(())
}

/// A number that must sort as a number in the database (ship ids, positions, times).
pub(crate) fn to_i64(what: &'static str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange {
        what,
        value,
        max: MAX_I64,
    })
}

/// A number read back from such a column.
pub(crate) fn from_i64(what: &'static str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Damaged(format!("{what} {value} is negative")))
}

/// A random 64-bit id (client instance, request id), stored as the BIGINT with the same bits.
pub(crate) fn bits(value: u64) -> i64 {
    value as i64
}

/// An argon2 PHC string, as `argon2::PasswordHash` writes it: `$argon2id$v=19$m=...`.
/// Only its shape is checked; hashing and verifying are the caller's.
pub(crate) fn password_phc(phc: &str) -> Result<()> {
    let reason = if !phc.starts_with("$argon2") {
        Some("not an argon2 PHC string (it must start with \"$argon2\")".to_string())
    } else if phc.len() > MAX_PASSWORD_PHC_BYTES {
        Some(format!(
            "it is {} bytes; the limit is {MAX_PASSWORD_PHC_BYTES}",
            phc.len()
        ))
    } else if phc.split('$').count() < 4 {
        Some("it lacks the parameters, salt or hash".to_string())
    } else {
        phc.chars()
            .find(|c| !c.is_ascii_graphic())
            .map(|c| format!("{c:?} cannot be part of one"))
    };
    match reason {
        Some(reason) => Err(StoreError::Invalid {
            what: "password hash",
            reason,
        }),
        None => Ok(()),
    }
}

/// `now + seconds`, kept within a BIGINT.
pub(crate) fn later(now: u64, seconds: u64) -> u64 {
    now.saturating_add(seconds).min(MAX_I64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_world_stores_rule() {
        assert!(name("user name", "ada_1.x-y").is_ok());
        assert!(name("user name", &"a".repeat(64)).is_ok());
        for bad in ["", "a b", "ä", "a/b", &"a".repeat(65)] {
            let e = name("user name", bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid user name"), "{e}");
        }
    }

    #[test]
    fn numbers_that_sort_must_fit_a_bigint() {
        assert_eq!(to_i64("ship id", 7).unwrap(), 7);
        let e = to_i64("ship id", u64::MAX).unwrap_err().to_string();
        assert!(
            e.contains("ship id 18446744073709551615 is out of range"),
            "{e}"
        );
        assert_eq!(bits(u64::MAX), -1);
        assert_eq!(later(u64::MAX - 1, 5), i64::MAX as u64);
    }

    #[test]
    fn password_hashes_must_look_like_argon2_phc_strings() {
        let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
        assert!(password_phc(phc).is_ok());
        for bad in [
            "hunter22",
            "$argon2id",
            "$argon2id$v=19$m=1 x$s$h",
            "$bcrypt$x$y$z",
        ] {
            assert!(password_phc(bad).is_err(), "{bad}");
        }
        let long = format!("{phc}{}", "a".repeat(600));
        assert!(
            password_phc(&long)
                .unwrap_err()
                .to_string()
                .contains("limit is 512")
        );
    }
}
