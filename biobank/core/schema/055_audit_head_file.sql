-- The audit head is also written outside the store (biobank.core.audit: an append-only
-- head file beside the center key, and syslog when present). external_since records
-- when that file was established, so that a missing file is reported as tampering.
ALTER TABLE audit_head ADD COLUMN external_since TIMESTAMP;
