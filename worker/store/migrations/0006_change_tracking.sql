-- 0006: what changed since a worker's last read (DESIGN §12, T1): the safety-net refresh reads
-- only the communities changed since its previous one, so its cost follows the changes, not
-- the store.
--
-- - communities.changed_xid: the transaction that last changed the community or one of its
--   keys, fields, mappings or key tombstones (its version). A worker remembers the oldest
--   transaction still running when it last read (pg_snapshot_xmin of that read's snapshot):
--   every transaction below it had ended and was seen, so the next read asks only for
--   `changed_xid >= that`, and a transaction that commits after a read is never missed,
--   whatever the order of transaction ids and commits.
-- - community_removals: the communities deleted (or renamed away), with the deleting
--   transaction, so that a removed community also leaves the cache of a worker whose
--   notification went missing. Kept 7 days; a worker whose last read is older reads everything.
--
-- The triggers are ENABLE ALWAYS: a writer that turns the notifications off
-- (session_replication_role = replica) still leaves its changes for the safety net, which is
-- what the net is for. Child tables touch their community once per statement (transition
-- tables): a bulk write of 100 000 communities' keys costs one UPDATE per statement, not one
-- per row.

ALTER TABLE communities ADD COLUMN changed_xid bigint NOT NULL DEFAULT 0;
CREATE INDEX communities_changed_xid ON communities (changed_xid);

CREATE TABLE community_removals (
    community_id text PRIMARY KEY,
    removed_xid bigint NOT NULL,
    removed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX community_removals_removed_xid ON community_removals (removed_xid);
CREATE INDEX community_removals_removed_at ON community_removals (removed_at);

-- The current transaction's id as a bigint (assigns one if the transaction has none yet).
CREATE FUNCTION identity_current_xid() RETURNS bigint
LANGUAGE sql VOLATILE AS $$ SELECT pg_current_xact_id()::text::bigint $$;

-- communities, BEFORE INSERT OR UPDATE, per row: the row carries the writing transaction.
CREATE FUNCTION identity_community_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_xid := identity_current_xid();
    RETURN NEW;
END
$$;

CREATE TRIGGER communities_changed BEFORE INSERT OR UPDATE ON communities
    FOR EACH ROW EXECUTE FUNCTION identity_community_changed();
ALTER TABLE communities ENABLE ALWAYS TRIGGER communities_changed;

-- communities, AFTER DELETE per statement / AFTER UPDATE OF id per row: the ids that left.
CREATE FUNCTION identity_community_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO community_removals AS r (community_id, removed_xid)
        SELECT DISTINCT id, identity_current_xid() FROM old_rows
        ON CONFLICT (community_id) DO UPDATE
            SET removed_xid = EXCLUDED.removed_xid, removed_at = now();
        DELETE FROM community_removals WHERE removed_at < now() - interval '7 days';
    ELSE
        INSERT INTO community_removals AS r (community_id, removed_xid)
        VALUES (OLD.id, identity_current_xid())
        ON CONFLICT (community_id) DO UPDATE
            SET removed_xid = EXCLUDED.removed_xid, removed_at = now();
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER communities_removed AFTER DELETE ON communities
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION identity_community_removed();
ALTER TABLE communities ENABLE ALWAYS TRIGGER communities_removed;
CREATE TRIGGER communities_renamed AFTER UPDATE OF id ON communities
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION identity_community_removed();
ALTER TABLE communities ENABLE ALWAYS TRIGGER communities_renamed;

-- jwt_keys, custom_fields, mappings, key_tombstones, AFTER each statement: their communities
-- changed (once per community and transaction: a row already marked is not written again).
CREATE FUNCTION identity_children_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    xid bigint := identity_current_xid();
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE communities c SET changed_xid = xid
        FROM (SELECT DISTINCT community_id FROM new_rows) n
        WHERE c.id = n.community_id AND c.changed_xid <> xid;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE communities c SET changed_xid = xid
        FROM (SELECT community_id FROM new_rows UNION SELECT community_id FROM old_rows) n
        WHERE c.id = n.community_id AND c.changed_xid <> xid;
    ELSE
        UPDATE communities c SET changed_xid = xid
        FROM (SELECT DISTINCT community_id FROM old_rows) n
        WHERE c.id = n.community_id AND c.changed_xid <> xid;
    END IF;
    RETURN NULL;
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['jwt_keys', 'custom_fields', 'mappings', 'key_tombstones'] LOOP
        EXECUTE format(
            'CREATE TRIGGER %1$s_inserted AFTER INSERT ON %1$I REFERENCING NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION identity_children_changed()', t);
        EXECUTE format(
            'CREATE TRIGGER %1$s_updated AFTER UPDATE ON %1$I '
            'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION identity_children_changed()', t);
        EXECUTE format(
            'CREATE TRIGGER %1$s_deleted AFTER DELETE ON %1$I REFERENCING OLD TABLE AS old_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION identity_children_changed()', t);
        EXECUTE format('ALTER TABLE %1$I ENABLE ALWAYS TRIGGER %1$s_inserted', t);
        EXECUTE format('ALTER TABLE %1$I ENABLE ALWAYS TRIGGER %1$s_updated', t);
        EXECUTE format('ALTER TABLE %1$I ENABLE ALWAYS TRIGGER %1$s_deleted', t);
    END LOOP;
END
$$;
