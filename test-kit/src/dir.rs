use std::fmt;
use std::ops::Deref;
use std::path::Path;

/// An empty directory for one test, removed with everything in it when dropped, also when the
/// test panics. Its name starts with `astroboids-NAME-` so a leftover (a killed test run) is
/// recognisable in the system's temporary directory.
///
/// It dereferences to its [`Path`], so it goes wherever a test passed a directory path before:
/// `WorldStore::open(&dir, ..)`, `dir.join("run.abreplay")`. A path inside it that does not exist
/// yet is `dir.join(NAME)`.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// Creates the directory.
    ///
    /// # Panics
    /// When the system's temporary directory cannot be written: no test could run then.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("astroboids-{name}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory for {name}: {e}"));
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.path()
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl fmt::Debug for TempDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TempDir").field(&self.path()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_empty_at_first_and_gone_with_its_contents_after_drop() {
        let dir = TempDir::new("kit-drop");
        assert!(dir.is_dir());
        assert_eq!(std::fs::read_dir(&*dir).unwrap().count(), 0);
        std::fs::create_dir(dir.join("nested")).unwrap();
        std::fs::write(dir.join("nested/file"), "x").unwrap();
        let path = dir.to_path_buf();
        drop(dir);
        assert!(!path.exists(), "{} is left behind", path.display());
    }

    #[test]
    fn directories_of_the_same_name_are_distinct() {
        let (a, b) = (TempDir::new("kit-same"), TempDir::new("kit-same"));
        assert_ne!(a.path(), b.path());
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("astroboids-kit-same-"), "{name}");
    }
}
