-- Look-ups of a specimen's family: its children (parent_label: remaining quantity,
-- lineage, aliquot checks) and a participant's specimens (the lineage tree, the
-- participant page). Neither column is ever updated, so the indexes cost only inserts.
CREATE INDEX IF NOT EXISTS specimen_parent_label ON specimen (parent_label);
CREATE INDEX IF NOT EXISTS specimen_participant ON specimen (participant_id);
