-- Data access under approval (biobank/research/access_requests.py, extracts.py,
-- releases.py): requests and their decisions, the project extracts issued for an
-- approved request (with who was in each issue, for the withdrawal lists), and the
-- per-user record of released aggregate cohorts behind the differencing check.
CREATE SEQUENCE access_request_seq START 1;

CREATE TABLE access_request (
    request_id      INTEGER PRIMARY KEY DEFAULT nextval('access_request_seq'),
    project         VARCHAR NOT NULL,       -- short project name
    title           VARCHAR NOT NULL,       -- what the project studies
    applicant       VARCHAR NOT NULL,       -- app_user.user_name
    institution     VARCHAR NOT NULL,
    country         VARCHAR NOT NULL,       -- ISO 3166-1 alpha-2 of the institution
    foreign_party   BOOLEAN NOT NULL,       -- a foreign organisation or person takes part
    purpose         VARCHAR NOT NULL,       -- DUO-style: GRU, HMB, POA, DS:<ICD-10>
    fields          VARCHAR[] NOT NULL,     -- "table.column" from the classification
    cohort          VARCHAR,                -- criterion JSON (biobank.clinical.cohorts) or NULL
    period_start    DATE NOT NULL,
    period_end      DATE NOT NULL,
    hgr_approval    VARCHAR,                -- authority approval number (human genetic resources)
    status          VARCHAR NOT NULL,       -- pending | approved | rejected
    submitted_at    TIMESTAMP NOT NULL,     -- UTC
    decided_by      VARCHAR,
    decided_at      TIMESTAMP,              -- UTC
    decision_reason VARCHAR,
    expires_on      DATE                    -- approval ends (inclusive)
);

CREATE SEQUENCE access_extract_seq START 1;

CREATE TABLE access_extract (
    extract_id      INTEGER PRIMARY KEY DEFAULT nextval('access_extract_seq'),
    request_id      INTEGER NOT NULL,
    issue           INTEGER NOT NULL,       -- 1, 2, ... per request
    path            VARCHAR NOT NULL,       -- the DuckDB file written
    sha256          VARCHAR NOT NULL,
    n_participants  INTEGER NOT NULL,
    n_withdrawn     INTEGER NOT NULL,       -- on this issue's withdrawal list
    manifest        JSON NOT NULL,
    created_by      VARCHAR NOT NULL,
    created_at      TIMESTAMP NOT NULL      -- UTC
);

-- Who was in each issue (store pseudonyms; never leaves the store).
CREATE TABLE access_extract_member (
    extract_id      INTEGER NOT NULL,
    participant_id  VARCHAR NOT NULL
);

-- Aggregate cohorts released to a user without record-level access
-- (biobank/research/releases.py): a new cohort whose members differ from a
-- released one by fewer than the small-count threshold is refused.
CREATE SEQUENCE disclosure_release_seq START 1;

CREATE TABLE disclosure_release (
    release_id      INTEGER PRIMARY KEY DEFAULT nextval('disclosure_release_seq'),
    user_name       VARCHAR NOT NULL,
    purpose         VARCHAR NOT NULL,
    label           VARCHAR NOT NULL,       -- the cohort definition or name
    n_members       INTEGER NOT NULL,
    members         VARCHAR[] NOT NULL,     -- sorted participant ids
    released_at     TIMESTAMP NOT NULL      -- UTC
);
