-- 0005: console sessions, token expiry, and the audit trail of one incarnation (DESIGN §10,
-- A8, A10, A11).
--
-- console_sessions: a signed-in browser holds a random session id, never the API token
-- (A8). Only the SHA-256 of the id is stored (256 random bits: nothing to brute-force). A
-- session names the token that opened it; revoking or removing that token ends its
-- sessions at once (ON DELETE CASCADE here, and `api_tokens.revoke` deletes them). A session
-- ends when idle past idle_expires_at or at expires_at (absolute), whichever comes first;
-- sign-out deletes it.
--
-- api_tokens.expires_at: a token may carry an expiry (`admin token create --expires 90d`);
-- from then on it is refused like a revoked one (A10). NULL: it does not expire.
--
-- communities.incarnation / audit_log.incarnation: a community removed and created again
-- under the same id is a new incarnation, and its owner's trail starts empty (A11). A row
-- written about a community records the incarnation it was written in; a community's
-- listing shows its current incarnation's rows only, the platform's listing all of them.
-- Rows written before this migration belong to the incarnation that exists now.

ALTER TABLE communities ADD COLUMN incarnation bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE communities ADD CONSTRAINT communities_incarnation_unique UNIQUE (incarnation);

ALTER TABLE audit_log ADD COLUMN incarnation bigint;
UPDATE audit_log a SET incarnation = c.incarnation FROM communities c WHERE c.id = a.community_id;
CREATE INDEX audit_log_incarnation ON audit_log (incarnation, id);

ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;

CREATE TABLE console_sessions (
    id_sha256 text PRIMARY KEY
        CONSTRAINT console_sessions_id_sha256_format CHECK (id_sha256 ~ '^[0-9a-f]{64}$'),
    token_name text NOT NULL REFERENCES api_tokens (name) ON DELETE CASCADE ON UPDATE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    idle_expires_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    CONSTRAINT console_sessions_idle_within_absolute CHECK (idle_expires_at <= expires_at)
);

CREATE INDEX console_sessions_token ON console_sessions (token_name);
