-- 0003: key lifecycle and integration health (DESIGN §11, L1–L5; V9 expiry_too_far).
--
-- - communities.max_validity_seconds: V9's cap on how far exp may lie after received_at
--   (NULL: no cap). It can never be below min_validity_seconds: every token would be refused.
-- - communities.retirement_window_seconds: L3, a key that verified a token this recently is
--   not removed unless forced.
-- - key_tombstones: what a removed key leaves (kid, algorithm, fingerprint, when), never its
--   secret, so `unknown_kid` can say "key 'x' was removed on …" (L3).
-- - key_usage_total / key_usage_hourly: per community and kid, tokens verified and signature
--   failures (L1, L2). Workers add their in-memory counts in batches: every write adds, so
--   several processes and machines add up. Hour buckets keep "the last 24 h" a sum of at most
--   25 rows per key; they are pruned after 32 days (the retirement window is at most 30).
-- - integration_health_minute: per community, outcome and reason, the events of each minute
--   and the last detail (L5). community_id '' holds events of no configured community
--   (unknown_community, unreadable events): their ids are attacker-chosen and unbounded.
--
-- Usage rows have no foreign keys: counts arrive seconds after the verdict, and a key or
-- community removed meanwhile must not make a worker's whole batch fail.

ALTER TABLE communities
    ADD COLUMN max_validity_seconds integer
        CONSTRAINT communities_max_validity_seconds_range
        CHECK (max_validity_seconds BETWEEN 1 AND 316224000 AND max_validity_seconds >= min_validity_seconds),
    ADD COLUMN retirement_window_seconds integer NOT NULL DEFAULT 86400
        CONSTRAINT communities_retirement_window_seconds_range
        CHECK (retirement_window_seconds BETWEEN 0 AND 2592000);

CREATE TABLE key_tombstones (
    community_id text NOT NULL REFERENCES communities (id) ON DELETE CASCADE ON UPDATE CASCADE,
    kid text NOT NULL
        CONSTRAINT key_tombstones_kid_format CHECK (kid ~ '^[a-z0-9_]+$' AND char_length(kid) <= 64),
    alg text NOT NULL
        CONSTRAINT key_tombstones_alg_values CHECK (alg IN ('HS256', 'RS256')),
    fingerprint text NOT NULL
        CONSTRAINT key_tombstones_fingerprint_format CHECK (fingerprint ~ '^sha256:[0-9a-f]{16}$'),
    removed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, kid)
);

CREATE TABLE key_usage_total (
    community_id text NOT NULL,
    kid text NOT NULL,
    verified bigint NOT NULL DEFAULT 0 CONSTRAINT key_usage_total_verified_range CHECK (verified >= 0),
    signature_failures bigint NOT NULL DEFAULT 0
        CONSTRAINT key_usage_total_signature_failures_range CHECK (signature_failures >= 0),
    last_verified_at timestamptz,
    last_failure_at timestamptz,
    PRIMARY KEY (community_id, kid)
);

CREATE TABLE key_usage_hourly (
    community_id text NOT NULL,
    kid text NOT NULL,
    hour timestamptz NOT NULL
        CONSTRAINT key_usage_hourly_hour_aligned CHECK (date_trunc('hour', hour) = hour),
    verified bigint NOT NULL DEFAULT 0 CONSTRAINT key_usage_hourly_verified_range CHECK (verified >= 0),
    signature_failures bigint NOT NULL DEFAULT 0
        CONSTRAINT key_usage_hourly_signature_failures_range CHECK (signature_failures >= 0),
    PRIMARY KEY (community_id, kid, hour)
);
CREATE INDEX key_usage_hourly_hour ON key_usage_hourly (hour);

CREATE TABLE integration_health_minute (
    community_id text NOT NULL,
    minute timestamptz NOT NULL
        CONSTRAINT integration_health_minute_aligned CHECK (date_trunc('minute', minute) = minute),
    outcome text NOT NULL
        CONSTRAINT integration_health_outcome_values CHECK (outcome IN ('enriched', 'rejected', 'dead_letter')),
    reason text NOT NULL,  -- '' unless rejected
    events bigint NOT NULL CONSTRAINT integration_health_events_range CHECK (events >= 0),
    last_detail text CONSTRAINT integration_health_detail_length CHECK (char_length(last_detail) <= 1000),
    last_at timestamptz NOT NULL,
    PRIMARY KEY (community_id, minute, outcome, reason)
);
CREATE INDEX integration_health_minute_minute ON integration_health_minute (minute);
