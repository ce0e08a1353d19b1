//! Secrets on disk: files readable by their owner only (created 0600, never briefly wider),
//! in folders only the owner can enter (0700).

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Creates or replaces `path` with `contents`, mode 0600 from the first byte on.
pub fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // An older file keeps its mode on open: narrow it too.
    restrict(path, 0o600)?;
    file.write_all(contents.as_bytes())
        .and_then(|_| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Creates `dir` (and parents) and makes it 0700.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    restrict(dir, 0o700)
}

fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    let _ = mode;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_0600_folders_0700() {
        let root = std::env::temp_dir().join(format!("tidemark-secrets-{}", std::process::id()));
        let dir = root.join("data");
        super::private_dir(&dir).unwrap();
        let f = dir.join("k");
        super::write(&f, "one").unwrap();
        super::write(&f, "two").unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&f), 0o600);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "two");
        let _ = std::fs::remove_dir_all(root);
    }
}
