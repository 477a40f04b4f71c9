-- Core tables: provenance of every load, users and roles, and the audit log.
CREATE SEQUENCE provenance_seq START 1;
CREATE TABLE provenance (
    load_id        BIGINT PRIMARY KEY,
    kind           VARCHAR NOT NULL,      -- 'vcf', 'clinical', 'registry-csv', ...
    source         VARCHAR NOT NULL,      -- input path as given
    checksum       VARCHAR NOT NULL,      -- sha256 of the input bytes
    parameters     JSON NOT NULL,
    tool_version   VARCHAR,
    biobank_version VARCHAR NOT NULL,
    user_name      VARCHAR NOT NULL,
    loaded_at      TIMESTAMP NOT NULL     -- UTC
);

CREATE TABLE app_user (
    user_name   VARCHAR PRIMARY KEY,
    role        VARCHAR NOT NULL CHECK (role IN ('admin', 'registrar', 'researcher', 'auditor')),
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMP NOT NULL,
    created_by  VARCHAR NOT NULL
);

-- Append-only, hash-chained: entry_hash = sha256(prev_hash || canonical JSON of the entry).
CREATE TABLE audit_log (
    entry_id    BIGINT PRIMARY KEY,       -- 1, 2, 3 ... without gaps
    logged_at   TIMESTAMP NOT NULL,       -- UTC
    user_name   VARCHAR NOT NULL,
    role        VARCHAR NOT NULL,
    action      VARCHAR NOT NULL,         -- e.g. 'participant.create', 'genotype.read'
    target      VARCHAR NOT NULL,         -- what was touched (pseudonym, label, query name)
    detail      JSON NOT NULL,            -- why, parameters, counts
    prev_hash   VARCHAR NOT NULL,
    entry_hash  VARCHAR NOT NULL
);
