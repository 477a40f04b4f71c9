-- Registry: participants (pseudonymised), encrypted re-contact identifiers, consents,
-- specimens with storage positions and lineage, sequencing sample links, and the
-- event log from which all of it can be replayed. Owner: biobank/registry.py.
-- Integrity rules that DuckDB cannot express (one specimen per position, aliquot
-- quantities, consent references) are checked in biobank/specimens.py and
-- biobank/consent.py before writing.

-- One row per person. participant_id = ids.pseudonym(national id, center key).
-- No name, national id, phone or full birth date here.
CREATE TABLE participant (
    participant_id  VARCHAR PRIMARY KEY,
    sex             VARCHAR NOT NULL CHECK (sex IN ('female', 'male')),
    birth_year      INTEGER NOT NULL,
    enrolment_date  DATE NOT NULL,
    site            VARCHAR NOT NULL,      -- enrolling site (hospital / centre code)
    created_at      TIMESTAMP NOT NULL,    -- UTC
    updated_at      TIMESTAMP NOT NULL     -- UTC
);

-- Study / cohort memberships (e.g. T2D, CAD).
CREATE TABLE participant_cohort (
    participant_id  VARCHAR NOT NULL,
    cohort          VARCHAR NOT NULL,
    PRIMARY KEY (participant_id, cohort)
);

-- Direct identifiers kept for re-contact, encrypted (Fernet, key derived from the
-- center key with HKDF). Read only via registry.read_recontact (RECONTACT_READ, audited).
CREATE TABLE recontact_identifier (
    participant_id  VARCHAR PRIMARY KEY,
    token           VARCHAR NOT NULL,      -- Fernet token of JSON {name, national_id, phone, birth_date}
    updated_at      TIMESTAMP NOT NULL
);

-- Versioned consents with GA4GH DUO codes. The current consent of a participant is
-- the one with the latest signed_date (then the highest consent_seq).
CREATE SEQUENCE consent_seq START 1;
CREATE TABLE consent (
    participant_id  VARCHAR NOT NULL,
    consent_version VARCHAR NOT NULL,
    consent_seq     BIGINT NOT NULL,       -- order of registration (tie-break)
    signed_date     DATE NOT NULL,
    primary_code    VARCHAR NOT NULL CHECK (primary_code IN ('NRES', 'GRU', 'HMB', 'DS', 'POA')),
    disease         VARCHAR,               -- ICD-10 code (dotted, e.g. E11 or C50.9) when DS
    modifiers       VARCHAR NOT NULL,      -- ';'-separated DUO modifier codes, '' if none
    withdrawn_date  DATE,                  -- set when the participant withdrew
    PRIMARY KEY (participant_id, consent_version)
);

-- Specimens: type from biobank.vocab, lineage via parent_label, storage position.
CREATE TABLE specimen (
    label             VARCHAR PRIMARY KEY, -- ids.make_label: MOD 37-36 check character, Code 128 ready
    participant_id    VARCHAR NOT NULL,
    parent_label      VARCHAR,             -- the specimen it was aliquoted / derived from
    specimen_type     VARCHAR NOT NULL,
    collected_at      TIMESTAMP NOT NULL,  -- local time of collection as recorded
    anatomical_site   VARCHAR,             -- required for tissue types
    quantity          DOUBLE NOT NULL,     -- as registered
    unit              VARCHAR NOT NULL,
    consumed_quantity DOUBLE NOT NULL,     -- used up so far (same unit)
    status            VARCHAR NOT NULL CHECK (status IN ('available', 'consumed', 'shipped', 'destroyed')),
    freezer           VARCHAR,             -- storage position: all four set, or none
    rack              VARCHAR,
    box               VARCHAR,
    position          VARCHAR,
    shipped_to        VARCHAR,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);

-- Sequencing samples (the sample names of FASTQ sample sheets and VCFs).
CREATE TABLE sequencing_sample (
    sample_id       VARCHAR PRIMARY KEY,
    specimen_label  VARCHAR NOT NULL,
    participant_id  VARCHAR NOT NULL
);

-- Every create, update, move, consume, ship and consent change, with who, when and
-- why. data holds the columns set by the event; replaying events in event_id order
-- reproduces the tables above (registry.replay_events).
CREATE SEQUENCE registry_event_seq START 1;
CREATE TABLE registry_event (
    event_id        BIGINT PRIMARY KEY,
    occurred_at     TIMESTAMP NOT NULL,    -- UTC
    user_name       VARCHAR NOT NULL,
    entity          VARCHAR NOT NULL,      -- participant, participant_cohort, recontact_identifier
                                           -- (ciphertext only), consent, specimen, sequencing_sample
    entity_key      VARCHAR NOT NULL,      -- pseudonym, label, 'P-…/v2', sample id
    action          VARCHAR NOT NULL,      -- create, update, delete, move, consume, ship, destroy, withdraw, link
    reason          VARCHAR NOT NULL,
    data            JSON NOT NULL
);

-- Head of the audit chain, kept in step with audit_log by audit.record and signed with
-- an HMAC of the center key (outside the database), so deleting the newest entries
-- is detected by audit.verify.
CREATE TABLE audit_head (
    id          INTEGER PRIMARY KEY,
    entry_id    BIGINT NOT NULL,
    entry_hash  VARCHAR NOT NULL,
    head_mac    VARCHAR
);
INSERT INTO audit_head
SELECT 1,
       coalesce((SELECT max(entry_id) FROM audit_log), 0),
       coalesce((SELECT entry_hash FROM audit_log ORDER BY entry_id DESC LIMIT 1), repeat('0', 64)),
       NULL;
