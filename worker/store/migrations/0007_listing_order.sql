-- 0007: listings in pages (DESIGN §12, T5).
--
-- Every listing is read a page at a time with a keyset cursor (worker/store/pages.py). Text ids
-- are ordered and filtered by prefix byte-wise (COLLATE "C"), whatever the database's own
-- collation, so that the order is the same on every server and a prefix is a range. This index
-- makes a page of communities (and a prefix search) an index range scan at any size: the
-- primary key's index has the database's collation, which the planner cannot use for "C".
CREATE INDEX communities_id_bytewise ON communities (id COLLATE "C");
