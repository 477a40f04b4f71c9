-- Family checks in the sample QC table (issue 19). Owner: biobank/sequencing/sampleqc.py
-- (load_sample_qc writes the workflow's columns, merge_family_checks the family_* ones,
-- called by biobank/families/checks.py in the same transaction as family_check).
--
-- The table is rebuilt (DuckDB cannot add a column with a CHECK constraint): a sample checked against its pedigree may have no
-- workflow QC yet, so load_id and the workflow verdict become nullable, and qc_pass
-- becomes the overall verdict: FALSE when the family check failed, else the workflow's
-- verdict (NULL when the workflow has not assessed the sample).
ALTER TABLE sample_qc RENAME TO sample_qc_040;

CREATE TABLE sample_qc (
    sample_id           VARCHAR PRIMARY KEY,   -- sequencing sample id (sequencing_sample.sample_id)
    load_id             BIGINT,                -- provenance.load_id of the QC table; NULL: no workflow QC
    n_sites             INTEGER,
    n_called            INTEGER,
    call_rate           DOUBLE,
    n_het               INTEGER,
    n_hom_alt           INTEGER,
    het_rate            DOUBLE,
    tstv                DOUBLE,
    mean_depth          DOUBLE,
    registered_sex      VARCHAR,
    inferred_sex        VARCHAR,
    sex_check           VARCHAR,
    max_kinship         DOUBLE,
    related_to          VARCHAR,               -- ';'-separated sample ids
    flags               VARCHAR,               -- ';'-separated failed workflow checks
    workflow_qc_pass    BOOLEAN,               -- the workflow's verdict; NULL: no workflow QC
    family_check        VARCHAR CHECK (family_check IN ('pass', 'fail', 'not_tested')), -- summary of the sample's family_check rows; NULL: never checked
    family_check_detail VARCHAR,               -- the failed checks with their reasons, or what passed
    family_checked_at   TIMESTAMP,             -- UTC, the latest family check of the sample
    qc_pass             BOOLEAN,               -- overall: FALSE if family_check failed, else workflow_qc_pass
    CHECK ((load_id IS NULL) = (workflow_qc_pass IS NULL)),
    CHECK (load_id IS NOT NULL OR family_checked_at IS NOT NULL),
    CHECK ((family_check IS NULL) = (family_checked_at IS NULL))
);

INSERT INTO sample_qc
SELECT sample_id, load_id, n_sites, n_called, call_rate, n_het, n_hom_alt, het_rate, tstv,
       mean_depth, registered_sex, inferred_sex, sex_check, max_kinship, related_to, flags,
       qc_pass, NULL, NULL, NULL, qc_pass
FROM sample_qc_040;

DROP TABLE sample_qc_040;
