-- Families: pedigrees and phenotypes of participants (registry entities, written through
-- biobank.registry.events so replay reproduces them), and the results of checking a
-- pedigree against the genomes. Owners: biobank/registry/pedigree.py,
-- biobank/registry/phenotypes.py (writes), biobank/families (reads, family_check writes).

-- One row per person in a family (a PED line). Parents are participants of the same family;
-- NULL when not registered (a founder of the pedigree, or an unknown parent).
CREATE TABLE family_member (
    family_id       VARCHAR NOT NULL,      -- as given in the PED file (e.g. FAM0007)
    participant_id  VARCHAR NOT NULL,      -- pseudonym
    father_id       VARCHAR,               -- pseudonym of the father, NULL if unknown
    mother_id       VARCHAR,               -- pseudonym of the mother, NULL if unknown
    affected        VARCHAR NOT NULL CHECK (affected IN ('affected', 'unaffected', 'unknown')),
    twin_group      VARCHAR,               -- members sharing a value are monozygotic twins
    created_at      TIMESTAMP NOT NULL,    -- UTC
    updated_at      TIMESTAMP NOT NULL,    -- UTC
    PRIMARY KEY (family_id, participant_id)
);

-- Phenotypes as HPO terms, registered by staff or mapped from an ICD-10 diagnosis.
CREATE TABLE participant_phenotype (
    participant_id  VARCHAR NOT NULL,
    hpo_id          VARCHAR NOT NULL,      -- HP:0000118 form, a current (not obsolete) term
    hpo_name        VARCHAR NOT NULL,      -- the term's name in the HPO release used
    observed        BOOLEAN NOT NULL,      -- false: explicitly excluded (absent) phenotype
    source          VARCHAR NOT NULL,      -- 'staff' or 'icd10:<code>'
    created_at      TIMESTAMP NOT NULL,    -- UTC
    PRIMARY KEY (participant_id, hpo_id)
);

-- Results of biobank.families.checks: one row per (family, member, check). A newer run
-- of the same family replaces its rows.
CREATE TABLE family_check (
    family_id       VARCHAR NOT NULL,
    participant_id  VARCHAR NOT NULL,
    sample_id       VARCHAR,               -- the member's genotyped sample, NULL if none
    check_name      VARCHAR NOT NULL,      -- mendel, relatedness, sex
    status          VARCHAR NOT NULL CHECK (status IN ('pass', 'fail', 'not_tested')),
    value           DOUBLE,                -- e.g. Mendelian error rate, kinship
    detail          VARCHAR NOT NULL,      -- human-readable reason
    checked_at      TIMESTAMP NOT NULL     -- UTC
);
