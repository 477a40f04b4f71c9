-- Clinical outcomes (an OMOP CDM subset) keyed by participant pseudonym, and saved cohort
-- definitions. Owner: biobank/clinical.py, biobank/cohorts.py. No direct identifier here:
-- only the pseudonym, year of birth, sex and the dates of events. Every row carries the
-- provenance load that brought it (provenance.load_id). Re-loading a row that is already
-- here (same values) adds nothing: biobank.clinical inserts only rows not yet present.

CREATE TABLE clinical_person (
    participant_id  VARCHAR PRIMARY KEY,
    sex             VARCHAR NOT NULL CHECK (sex IN ('female', 'male')),
    year_of_birth   INTEGER NOT NULL,
    load_id         BIGINT NOT NULL
);

-- One row per diagnosis. code is the ICD-10 display form (E11.900x001), code_compact the
-- upper-case form without the dot used for hierarchy matching (E11900X001).
CREATE TABLE clinical_condition (
    participant_id  VARCHAR NOT NULL,
    code            VARCHAR NOT NULL,
    code_compact    VARCHAR NOT NULL,
    start_date      DATE NOT NULL,
    end_date        DATE,
    load_id         BIGINT NOT NULL
);

-- Laboratory values and body measurements (HbA1c in %, LDL-C in mmol/L, BMI in kg/m2 ...).
CREATE TABLE clinical_measurement (
    participant_id  VARCHAR NOT NULL,
    name            VARCHAR NOT NULL,      -- measurement_source_value, e.g. HbA1c
    measured_on     DATE NOT NULL,
    value           DOUBLE NOT NULL,
    unit            VARCHAR,
    load_id         BIGINT NOT NULL
);

-- Periods in which events would have been recorded: the end is the censoring date.
CREATE TABLE clinical_observation_period (
    participant_id  VARCHAR NOT NULL,
    start_date      DATE NOT NULL,
    end_date        DATE NOT NULL,
    load_id         BIGINT NOT NULL
);

CREATE TABLE clinical_death (
    participant_id  VARCHAR PRIMARY KEY,
    death_date      DATE NOT NULL,
    cause_code      VARCHAR,               -- ICD-10 display form, NULL if unknown
    cause_compact   VARCHAR,
    load_id         BIGINT NOT NULL
);

-- Named cohort definitions (criteria as JSON, see biobank.cohorts). Only the definition
-- is saved: members are re-computed on every use, so consent withdrawals are honoured.
CREATE TABLE cohort_definition (
    name         VARCHAR PRIMARY KEY,
    definition   JSON NOT NULL,
    description  VARCHAR NOT NULL,
    created_by   VARCHAR NOT NULL,
    created_at   TIMESTAMP NOT NULL        -- UTC
);
