-- 0002: S1 (DESIGN §1) in the database itself: a community in `require` mode always has at
-- least one JWT key. CLI, YAML and the admin API refuse such a change with their own line; this
-- holds every other writer (psql, another tool) to the same rule.
--
-- The check runs at COMMIT (a DEFERRABLE INITIALLY DEFERRED constraint trigger), so one
-- transaction may add a community then its first key, or rotate its only key (remove the old,
-- add the new), and only the state it commits is judged. It fires on the rows a transaction
-- touches: a community created before this migration without a key keeps loading (its events
-- are refused as before) until its row or its keys change, and that change must fix it.
-- TRUNCATE fires no row trigger: emptying jwt_keys while a community still requires signed
-- identities is refused at once (TRUNCATE communities CASCADE, which empties both, is fine).
-- Concurrent checks of one community are serialized (see the function), so two
-- transactions cannot each remove "one of two" keys; under REPEATABLE READ a writer's snapshot
-- predates the other's commit: run such writers at READ COMMITTED (the default) or SERIALIZABLE.
-- The violation is raised as a check_violation naming the constraint `communities_require_key`,
-- which the admin commands turn into one line by name (worker/store/db.py).

CREATE FUNCTION identity_require_has_key() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    cid text;  -- the community the change touched; NULL: every community (TRUNCATE)
    keyless text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        cid := NULL;
    ELSIF TG_TABLE_NAME = 'communities' THEN
        cid := NEW.id;
    ELSE
        cid := OLD.community_id;
    END IF;
    -- S1 spans two tables: unlocked, two transactions that each remove one of a community's two
    -- keys (or one switches it to require while the other removes its key) both see the other's
    -- row still there and both commit (write skew). The community's row lock, held to the end of
    -- the transaction, serializes them: the second waits, and its check below (a new snapshot
    -- under READ COMMITTED) sees the first's commit. A row lock lives in the row: an advisory lock
    -- per community would fill the shared lock table when one transaction writes some 25 000
    -- communities (config apply of a large export: "out of shared memory").
    IF cid IS NOT NULL THEN
        PERFORM 1 FROM communities WHERE id = cid FOR NO KEY UPDATE;
    END IF;
    SELECT c.id INTO keyless FROM communities c
    WHERE (cid IS NULL OR c.id = cid) AND c.signed_identities = 'require'
        AND NOT EXISTS (SELECT 1 FROM jwt_keys k WHERE k.community_id = c.id)
    LIMIT 1;
    IF keyless IS NOT NULL THEN
        RAISE EXCEPTION 'community % requires signed identities but has no JWT key (S1)', keyless
            USING ERRCODE = 'check_violation', CONSTRAINT = 'communities_require_key',
                TABLE = 'communities',
                HINT = 'add a key first, or switch the community to reject';
    END IF;
    RETURN NULL;
END
$$;

-- A community created or changed; a key removed or moved away; the keys emptied.
CREATE CONSTRAINT TRIGGER communities_require_key
    AFTER INSERT OR UPDATE ON communities
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION identity_require_has_key();
CREATE CONSTRAINT TRIGGER jwt_keys_require_key
    AFTER DELETE OR UPDATE OF community_id ON jwt_keys
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION identity_require_has_key();
CREATE TRIGGER jwt_keys_require_key_truncate AFTER TRUNCATE ON jwt_keys
    FOR EACH STATEMENT EXECUTE FUNCTION identity_require_has_key();
