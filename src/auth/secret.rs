//! The token signing key: configured, or generated once into the data directory.

use std::io::Write;
use std::path::Path;

use rand::RngCore;

use crate::config::Secret;
use secrecy::ExposeSecret;

/// Returns the configured key, or the one in `<data_dir>/jwt.secret`, creating that file
/// (mode 0600, 32 random bytes, hex) on first start.
pub fn load_or_generate(configured: &Secret, data_dir: &Path) -> std::io::Result<Secret> {
    if !configured.expose_secret().is_empty() {
        return Ok(configured.clone());
    }
    let path = data_dir.join("jwt.secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if !existing.is_empty() {
            return Ok(Secret::from(existing));
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    file.write_all(key.as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "generated a new token signing key");
    Ok(Secret::from(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_with_private_permissions() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let first = load_or_generate(&Secret::default(), dir.path()).expect("generated");
        let second = load_or_generate(&Secret::default(), dir.path()).expect("read back");
        assert_eq!(first.expose_secret().len(), 64);
        assert_eq!(first.expose_secret(), second.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("jwt.secret"))
                .expect("the key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
