-- Per-sample QC from the sequencing workflow (results/qc/sample_qc.tsv).
-- One row per sequencing sample; a newer QC run of the same sample replaces its row.
CREATE TABLE sample_qc (
    sample_id       VARCHAR PRIMARY KEY,   -- sequencing sample id (sequencing_sample.sample_id)
    load_id         BIGINT NOT NULL,       -- provenance.load_id of the QC table
    n_sites         INTEGER,
    n_called        INTEGER,
    call_rate       DOUBLE,
    n_het           INTEGER,
    n_hom_alt       INTEGER,
    het_rate        DOUBLE,
    tstv            DOUBLE,
    mean_depth      DOUBLE,
    registered_sex  VARCHAR,
    inferred_sex    VARCHAR,
    sex_check       VARCHAR,
    max_kinship     DOUBLE,
    related_to      VARCHAR,               -- ';'-separated sample ids
    flags           VARCHAR,               -- ';'-separated failed checks
    qc_pass         BOOLEAN NOT NULL
);
