//! Managed-database passwords at rest: AES-256-GCM, a fresh 96-bit nonce per value, stored as
//! `nonce || ciphertext+tag`. The key comes from `TIDEMARK_CREDENTIAL_KEY`.

use aes_gcm::aead::{Aead, Generate, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};

#[derive(Clone)]
pub struct CredentialKey(Aes256Gcm);

impl std::fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialKey(..)")
    }
}

impl CredentialKey {
    pub fn new(key: &[u8; 32]) -> Self {
        CredentialKey(Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)))
    }

    pub fn encrypt(&self, plaintext: &str) -> anyhow::Result<Vec<u8>> {
        let nonce = Nonce::generate();
        let ct = self
            .0
            .encrypt(&nonce, plaintext.as_bytes())
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn decrypt(&self, stored: &[u8]) -> anyhow::Result<String> {
        if stored.len() < 12 + 16 {
            anyhow::bail!("stored credential is too short");
        }
        let (nonce, ct) = stored.split_at(12);
        let nonce = Nonce::try_from(nonce)?;
        let pt = self.0.decrypt(&nonce, ct).map_err(|_| {
            anyhow::anyhow!("credential cannot be decrypted with the configured key")
        })?;
        Ok(String::from_utf8(pt)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let k = CredentialKey::new(&[1u8; 32]);
        let a = k.encrypt("s3cret").unwrap();
        let b = k.encrypt("s3cret").unwrap();
        assert_ne!(a, b, "fresh nonce per value");
        assert!(!a.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(k.decrypt(&a).unwrap(), "s3cret");
        assert!(CredentialKey::new(&[2u8; 32]).decrypt(&a).is_err());
        assert!(k.decrypt(b"short").is_err());
    }
}
