//! Versions of the credential key, and their rotation.
//!
//! `credential_keys` lists each version with the fingerprint of its key; the highest is
//! current, and new passwords are encrypted only under it, by a process that holds it. A
//! rotation re-encrypts every password in one transaction under a new key and records it as
//! the next version; processes still on the old key then fail to decrypt with a message
//! that says so, until they are given the new one.

use anyhow::Context;
use deadpool_postgres::GenericClient;
use serde::Serialize;

use crate::crypto::CredentialKey;

/// The current version and its key's fingerprint, registering this process's key as
/// version 1 when none is recorded yet.
pub async fn current<C: GenericClient>(
    client: &C,
    key: &CredentialKey,
) -> anyhow::Result<(i32, String)> {
    let found = match latest(client).await? {
        Some(v) => v,
        None => {
            let mine = key.fingerprints().into_iter().next().unwrap_or_default();
            client
                .execute(
                    "INSERT INTO credential_keys (version, fingerprint) VALUES (1, $1) ON CONFLICT DO NOTHING",
                    &[&mine],
                )
                .await?;
            latest(client)
                .await?
                .context("credential_keys is empty after registering version 1")?
        }
    };
    if !key.holds(&found.1) {
        anyhow::bail!(
            "TIDEMARK_CREDENTIAL_KEY is not the current credential key (version {}): configure \
             the key it was rotated to",
            found.0
        );
    }
    Ok(found)
}

async fn latest<C: GenericClient>(
    client: &C,
) -> Result<Option<(i32, String)>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT version, fingerprint FROM credential_keys ORDER BY version DESC LIMIT 1",
            &[],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

#[derive(Debug, Clone, Serialize)]
pub struct Rotation {
    /// The version the new key was recorded as.
    pub version: i32,
    /// Passwords re-encrypted under it.
    pub re_encrypted: usize,
}

/// Re-encrypts every stored password under `new` (its first key) in one transaction and
/// records it as the next key version. `old` must decrypt every password (else nothing
/// changes).
pub async fn rotate(
    client: &mut deadpool_postgres::Client,
    old: &CredentialKey,
    new: &CredentialKey,
) -> anyhow::Result<Rotation> {
    let new_fp = new
        .fingerprints()
        .into_iter()
        .next()
        .context("no new key given")?;
    let tx = client.transaction().await?;
    // Readers go on; writers of credentials (and other rotations) wait for the commit.
    tx.batch_execute("LOCK TABLE credential_keys, credentials, alert_channels IN EXCLUSIVE MODE")
        .await?;
    if let Some(r) = tx
        .query_opt(
            "SELECT version FROM credential_keys WHERE fingerprint = $1",
            &[&new_fp],
        )
        .await?
    {
        anyhow::bail!(
            "the new key already is credential key version {}: give a key never used before",
            r.get::<_, i32>(0)
        );
    }
    let version: i32 = tx
        .query_one(
            "INSERT INTO credential_keys (version, fingerprint) \
             SELECT COALESCE(max(version), 0) + 1, $1 FROM credential_keys RETURNING version",
            &[&new_fp],
        )
        .await?
        .get(0);
    let keys = Rekey {
        old,
        new,
        new_fp: &new_fp,
        version,
    };
    let re_encrypted = keys
        .table(&tx, "credentials", "password_ciphertext", "credential")
        .await?;
    // Rows without a password carry the version too: every row then names a live key.
    tx.execute(
        "UPDATE credentials SET key_version = $1 WHERE password_ciphertext IS NULL",
        &[&version],
    )
    .await?;
    // Alert-channel webhook secrets live under the same key (`old` must open every one).
    let channels = keys
        .table(&tx, "alert_channels", "secret_ciphertext", "alert-channel")
        .await?;
    tx.commit().await?;
    tracing::info!(version, re_encrypted, channels, "credential key rotated");
    Ok(Rotation {
        version,
        re_encrypted,
    })
}

/// One rotation's keys: what every secret is re-encrypted from and to.
struct Rekey<'a> {
    old: &'a CredentialKey,
    new: &'a CredentialKey,
    new_fp: &'a str,
    version: i32,
}

impl Rekey<'_> {
    /// Re-encrypts every secret of `table.column` (rows bound to `kind` and their id) in the
    /// rotation's transaction; one that `old` cannot open stops it all. Returns how many.
    async fn table(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        table: &str,
        column: &str,
        kind: &str,
    ) -> anyhow::Result<usize> {
        let rows = tx
            .query(
                &format!(
                    "SELECT id, key_version, {column} FROM {table} \
                     WHERE {column} IS NOT NULL ORDER BY id"
                ),
                &[],
            )
            .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut ciphertexts = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get(0)?;
            let stored: Vec<u8> = r.try_get(2)?;
            let secret = self
                .old
                .open((kind, id), r.try_get(1)?, &stored)
                .context("rotation stopped, nothing changed")?;
            ciphertexts.push(
                self.new
                    .seal(self.new_fp, (kind, id), self.version, &secret)?,
            );
            ids.push(id);
        }
        tx.execute(
            &format!(
                "UPDATE {table} t SET {column} = n.ct, key_version = $3 \
                 FROM unnest($1::bigint[], $2::bytea[]) AS n(id, ct) WHERE t.id = n.id"
            ),
            &[&ids, &ciphertexts, &self.version],
        )
        .await?;
        Ok(ids.len())
    }
}
