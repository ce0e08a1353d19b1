//! Managed-database passwords at rest: AES-256-GCM, a fresh 96-bit nonce per value, stored as
//! `nonce || ciphertext+tag`, with the credential's id and the key version as associated
//! data: a ciphertext copied to another row, or relabelled with another version, does not
//! decrypt. The key comes from `TIDEMARK_CREDENTIAL_KEY`; during a rotation a process may
//! also hold the next key (`TIDEMARK_NEXT_CREDENTIAL_KEY`).

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use sha2::{Digest, Sha256};

#[derive(Clone)]
struct OneKey {
    cipher: Aes256Gcm,
    /// Names the key without revealing it (a hash of it under a fixed label).
    fingerprint: String,
}

/// The credential keys this process holds: the configured one first, then the next one.
#[derive(Clone)]
pub struct CredentialKey(Vec<OneKey>);

impl std::fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialKey(..)")
    }
}

/// What the ciphertext is bound to: the kind of row (`credential`, `alert-channel`), its id
/// and the key version. `None` version: written before key versions existed.
fn associated_data(kind: &str, id: i64, key_version: Option<i32>) -> Vec<u8> {
    match key_version {
        None => Vec::new(),
        Some(v) => format!("tidemark-{kind}:{id}:{v}").into_bytes(),
    }
}

pub fn fingerprint(key: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"tidemark credential key fingerprint\0");
    h.update(key);
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl CredentialKey {
    pub fn new(key: &[u8; 32]) -> Self {
        CredentialKey(vec![OneKey {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)),
            fingerprint: fingerprint(key),
        }])
    }

    /// Also holds `next` (decrypts rows already rotated to it, encrypts when it is current).
    pub fn with_next(mut self, next: &[u8; 32]) -> Self {
        let k = CredentialKey::new(next);
        if !self.holds(&k.0[0].fingerprint) {
            self.0.extend(k.0);
        }
        self
    }

    /// The next key alone (the target of a rotation), when this process holds one.
    pub fn next_only(&self) -> Option<CredentialKey> {
        self.0.get(1).map(|k| CredentialKey(vec![k.clone()]))
    }

    pub fn fingerprints(&self) -> Vec<String> {
        self.0.iter().map(|k| k.fingerprint.clone()).collect()
    }

    pub fn holds(&self, fingerprint: &str) -> bool {
        self.0.iter().any(|k| k.fingerprint == fingerprint)
    }

    /// Encrypts with the key of `fingerprint` (the current version's), bound to the row.
    pub fn encrypt_for(
        &self,
        fingerprint: &str,
        credential_id: i64,
        key_version: i32,
        plaintext: &str,
    ) -> anyhow::Result<Vec<u8>> {
        self.seal(
            fingerprint,
            ("credential", credential_id),
            key_version,
            plaintext,
        )
    }

    /// [`Self::encrypt_for`] for a row of another kind (`("alert-channel", id)`): a value
    /// sealed for one kind never opens as another's.
    pub fn seal(
        &self,
        fingerprint: &str,
        (kind, id): (&str, i64),
        key_version: i32,
        plaintext: &str,
    ) -> anyhow::Result<Vec<u8>> {
        let key = self
            .0
            .iter()
            .find(|k| k.fingerprint == fingerprint)
            .ok_or_else(|| {
                anyhow::anyhow!("this process does not hold key version {key_version}")
            })?;
        let nonce = Nonce::generate();
        let aad = associated_data(kind, id, Some(key_version));
        let ct = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts credential `credential_id`'s stored value with any key this process holds.
    pub fn decrypt_for(
        &self,
        credential_id: i64,
        key_version: Option<i32>,
        stored: &[u8],
    ) -> anyhow::Result<String> {
        self.open(("credential", credential_id), key_version, stored)
    }

    /// [`Self::decrypt_for`] for a row of another kind.
    pub fn open(
        &self,
        (kind, credential_id): (&str, i64),
        key_version: Option<i32>,
        stored: &[u8],
    ) -> anyhow::Result<String> {
        if stored.len() < 12 + 16 {
            anyhow::bail!("the stored secret of {kind} {credential_id} is too short");
        }
        let (nonce, ct) = stored.split_at(12);
        let nonce = Nonce::try_from(nonce)?;
        let aad = associated_data(kind, credential_id, key_version);
        let pt = self
            .0
            .iter()
            .find_map(|k| {
                k.cipher
                    .decrypt(&nonce, Payload { msg: ct, aad: &aad })
                    .ok()
            })
            .ok_or_else(|| {
                let version = key_version.map_or("unversioned".to_string(), |v| format!("key version {v}"));
                anyhow::anyhow!(
                    "the secret of {kind} {credential_id} cannot be decrypted: it was not \
                     encrypted for this credential under {version} with a key this process holds \
                     (copied from another row, or TIDEMARK_CREDENTIAL_KEY is not the key it was rotated to)"
                )
            })?;
        Ok(String::from_utf8(pt)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_bound_to_row_version_and_key() {
        let k = CredentialKey::new(&[1u8; 32]);
        let fp = fingerprint(&[1u8; 32]);
        let a = k.encrypt_for(&fp, 7, 1, "s3cret").unwrap();
        let b = k.encrypt_for(&fp, 7, 1, "s3cret").unwrap();
        assert_ne!(a, b, "fresh nonce per value");
        assert!(!a.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(k.decrypt_for(7, Some(1), &a).unwrap(), "s3cret");
        let moved = k.decrypt_for(8, Some(1), &a).unwrap_err().to_string();
        assert!(moved.contains("credential 8"), "{moved}");
        assert!(!moved.contains("s3cret"));
        assert!(k.decrypt_for(7, Some(2), &a).is_err());
        assert!(k.decrypt_for(7, None, &a).is_err());
        assert!(CredentialKey::new(&[2u8; 32])
            .decrypt_for(7, Some(1), &a)
            .is_err());
        // A process holding the next key too reads both generations.
        let both = CredentialKey::new(&[2u8; 32]).with_next(&[1u8; 32]);
        assert_eq!(both.decrypt_for(7, Some(1), &a).unwrap(), "s3cret");
        assert!(k.decrypt_for(7, Some(1), b"short").is_err());
        assert_ne!(fp, fingerprint(&[2u8; 32]));
        assert_eq!(fp.len(), 24);
    }
}
