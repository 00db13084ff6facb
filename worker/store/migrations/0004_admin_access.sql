-- 0004: access to the configuration service and its audit trail (DESIGN §10, A2 and A4).
--
-- api_tokens: bearer tokens of the admin API and console. Only the SHA-256 of a token is
-- stored (a token is 256 random bits, so a fast hash is enough: nothing to brute-force);
-- the token itself is printed once by `admin token create` and never again. A token is
-- scoped to one community or to the platform, never both. A community token goes with its
-- community (ON DELETE CASCADE): re-creating a community of the same id never revives an
-- old customer's access.
--
-- audit_log: who changed what, when, before -> after, one row per community per change,
-- written in the same transaction as the change (worker/store/audit.py). `changes` holds
-- the change lines the admin commands print (keys by kid, algorithm and fingerprint,
-- never a secret). community_id is deliberately not a foreign key: the trail outlives the
-- community it tells about.

CREATE TABLE api_tokens (
    name text PRIMARY KEY
        CONSTRAINT api_tokens_name_format CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    token_sha256 text NOT NULL UNIQUE
        CONSTRAINT api_tokens_token_sha256_format CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    platform boolean NOT NULL,
    community_id text REFERENCES communities (id) ON DELETE CASCADE ON UPDATE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    last_used_at timestamptz,
    revoked_at timestamptz,
    CONSTRAINT api_tokens_one_scope CHECK (platform = (community_id IS NULL))
);

CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL
        CONSTRAINT audit_log_actor_length CHECK (char_length(actor) BETWEEN 1 AND 200),
    action text NOT NULL
        CONSTRAINT audit_log_action_length CHECK (char_length(action) BETWEEN 1 AND 200),
    community_id text,
    changes text[] NOT NULL
        CONSTRAINT audit_log_changes_not_empty CHECK (cardinality(changes) > 0)
);

CREATE INDEX audit_log_community ON audit_log (community_id, id);
