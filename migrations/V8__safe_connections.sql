-- Safe connections: TLS towards managed servers, and credentials bound to their row and key.

-- libpq's sslmode names; prefer: TLS when the server offers it.
ALTER TABLE instances
    ADD COLUMN tls_mode text NOT NULL DEFAULT 'prefer'
        CHECK (tls_mode IN ('disable', 'prefer', 'require', 'verify-ca', 'verify-full')),
    -- PEM bundle of the CAs trusted for this server (else the built-in roots).
    ADD COLUMN tls_ca_pem text CHECK (length(tls_ca_pem) <= 65536),
    -- NULL until the first collection after this migration.
    ADD COLUMN last_collection_encrypted boolean;

-- The key versions credentials were encrypted under; the highest is the current one. The
-- fingerprint (a hash of the key, never the key) tells a process whether it holds that key.
CREATE TABLE credential_keys (
    version     integer     PRIMARY KEY CHECK (version > 0),
    fingerprint text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- NULL: written before key versions, without associated data (decrypted as such, and
-- re-encrypted with it by the next rotation or password change).
ALTER TABLE credentials ADD COLUMN key_version integer REFERENCES credential_keys (version);
