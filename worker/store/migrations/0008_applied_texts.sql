-- 0008: the text `config apply` last made each community from (DESIGN §12, T4).
--
-- A file of 100 000 communities is mostly the same text as the last time it was applied; its
-- YAML reading dominated an apply that changes one community (~60 s of CPU). `config apply`
-- cuts the file into its communities' texts (worker/store/applied_texts.py) and skips reading
-- any whose text is the one recorded here, provided the community did not change since:
-- `changed_xid` (0006) is still the one recorded with the text. Any other write to the
-- community (the API, a `keys` command, SQL) moves changed_xid, and the next apply reads that
-- community's text again. Only the digest of the text is kept (it holds secrets).
CREATE TABLE applied_texts (
    community_id text PRIMARY KEY REFERENCES communities (id) ON DELETE CASCADE ON UPDATE CASCADE,
    digest bytea NOT NULL,
    changed_xid bigint NOT NULL
);
