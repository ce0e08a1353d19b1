//! `tidemark-local rotate-credential-key`: every stored password re-encrypted under a new key
//! in one transaction, the new key version recorded.
//!
//! The key in use comes from `TIDEMARK_CREDENTIAL_KEY`, else `<data-dir>/credential.key`. The
//! new one from `TIDEMARK_NEW_CREDENTIAL_KEY`, else (file-kept key only) it is generated,
//! written to `credential.key.next` before the rotation and moved over `credential.key`
//! after it commits, so no moment exists where the stored passwords' key is on no disk.
//! Stop the stack first: a running one keeps the old key until it restarts.

use base64::Engine;
use tidemark::credentials::keys::{rotate, Rotation};
use tidemark::crypto::CredentialKey;
use tidemark::Config;

use crate::{postgres, secret_files, setting, Options};

pub async fn rotate_credential_key(opts: &Options) -> anyhow::Result<Rotation> {
    let key_file = opts.data_dir.join("credential.key");
    let (old_b64, from_file) = match setting(opts, "TIDEMARK_CREDENTIAL_KEY") {
        Some(k) => (k, false),
        None => (
            std::fs::read_to_string(&key_file)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "no credential key to rotate: TIDEMARK_CREDENTIAL_KEY is not set and {} \
                         is not readable ({e})",
                        key_file.display()
                    )
                })?
                .trim()
                .to_string(),
            true,
        ),
    };
    let old = tidemark::config::parse_credential_key(&old_b64).map_err(anyhow::Error::msg)?;
    let new_b64 = match setting(opts, "TIDEMARK_NEW_CREDENTIAL_KEY") {
        Some(k) => k,
        None if from_file => {
            use rand::Rng;
            let mut k = [0u8; 32];
            rand::rng().fill_bytes(&mut k);
            base64::engine::general_purpose::STANDARD.encode(k)
        }
        None => anyhow::bail!(
            "TIDEMARK_CREDENTIAL_KEY comes from the environment: give the new key in \
             TIDEMARK_NEW_CREDENTIAL_KEY (32 bytes, base64), then configure it after the rotation"
        ),
    };
    let new = tidemark::config::parse_credential_key(&new_b64)
        .map_err(|e| anyhow::anyhow!("TIDEMARK_NEW_CREDENTIAL_KEY: {e}"))?;

    let database_url = postgres::resolve(opts.database_url.clone(), &opts.data_dir).await?;
    let config = Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(database_url.clone()),
        _ => setting(opts, k),
    })
    .map_err(anyhow::Error::msg)?;
    let pool = tidemark::db::pool_for(&config)?;
    tidemark::db::migrate(&pool).await?;

    let next_file = opts.data_dir.join("credential.key.next");
    if from_file {
        secret_files::write(&next_file, &new_b64)?;
    }
    let mut client = pool.get().await?;
    let result = rotate(
        &mut client,
        &CredentialKey::new(&old),
        &CredentialKey::new(&new),
    )
    .await;
    if from_file {
        match &result {
            Ok(_) => std::fs::rename(&next_file, &key_file)?,
            Err(_) => {
                let _ = std::fs::remove_file(&next_file);
            }
        }
    }
    result
}
