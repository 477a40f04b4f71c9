-- Genotype store: variants, load batches, genotyped samples and sparse calls.
-- Owner: biobank/vcf.py (writes), biobank/genotypes.py and biobank/stats.py (read).
-- Layout, bytes per genotype and growth: docs/store.md.
--
-- Sparse calls: genotype_call holds only calls that are NOT diploid homozygous-reference
-- (ALT carriers, no-calls kept explicitly, haploid calls incl. haploid hom-ref).
-- A sample is hom-ref at a variant only if its batch covered the variant
-- (batch_variant) and it has no genotype_call row there; if its batch did not
-- cover the variant the call is missing. So hom-ref and missing never mix.

-- A batch is a set of samples genotyped together (one VCF, or several VCFs of the same
-- samples, e.g. one per chromosome, each adding variants to the batch).
CREATE TABLE genotype_batch (
    batch_id        INTEGER PRIMARY KEY,
    n_samples       INTEGER NOT NULL,
    created_at      TIMESTAMP NOT NULL      -- UTC
);

-- One row per VCF loaded into a batch.
CREATE TABLE genotype_load (
    load_id         BIGINT PRIMARY KEY,     -- provenance.load_id
    batch_id        INTEGER NOT NULL,
    source          VARCHAR NOT NULL,       -- input path as given
    checksum        VARCHAR NOT NULL,       -- sha256 of the input bytes
    n_records       BIGINT NOT NULL,        -- VCF records read
    n_variants      BIGINT NOT NULL,        -- biallelic variant rows (multi-allelic records split)
    n_calls         BIGINT NOT NULL,        -- genotype_call rows written
    loaded_at       TIMESTAMP NOT NULL      -- UTC
);

-- Genotyped samples: compact integer key, the VCF sample name and who it is.
CREATE TABLE genotype_sample (
    sample_key      INTEGER PRIMARY KEY,    -- 1, 2, 3 ... in load order
    sample_id       VARCHAR NOT NULL UNIQUE,-- sequencing sample id (VCF column name)
    participant_id  VARCHAR NOT NULL,       -- pseudonym, via sequencing_sample
    batch_id        INTEGER NOT NULL,
    vcf_column      INTEGER NOT NULL        -- 0-based sample column in the batch's first VCF
);

-- Biallelic variants (multi-allelic VCF records are split: one row per ALT allele).
-- (variant_contig, variant_position, variant_ref, variant_alt) is unique; a
-- variant seen again in a later batch keeps its key.
CREATE TABLE variant (
    variant_key      INTEGER PRIMARY KEY,   -- 1, 2, 3 ... in first-load order
    contig           VARCHAR NOT NULL,
    position         INTEGER NOT NULL,      -- 1-based, as in the VCF
    ref              VARCHAR NOT NULL,
    alt              VARCHAR NOT NULL,
    allele_index     UTINYINT NOT NULL,     -- 1-based index of alt in the VCF record's ALT list
    n_alt_alleles    UTINYINT NOT NULL,     -- number of ALT alleles of the VCF record
    variant_id       VARCHAR,               -- VCF ID (rs number), NULL for '.'
    qual             REAL,                  -- NULL for '.'
    filter           VARCHAR,               -- 'PASS', or ';'-separated filter names; NULL for '.'
    gene             VARCHAR,               -- from BCSQ (most severe consequence's gene) or NULL
    consequence      VARCHAR,               -- BCSQ consequence (e.g. 'missense', 'stop_gained')
    bcsq             VARCHAR,               -- the full BCSQ value for this ALT allele
    info             JSON                   -- INFO fields asked for with --info, by name
);

-- Which variants each batch covered (a variant not covered is missing, not hom-ref).
CREATE TABLE batch_variant (
    batch_id        INTEGER NOT NULL,
    variant_key     INTEGER NOT NULL
);

-- Sparse calls, written in variant_key order within a load (zone maps).
-- dosage: copies of this ALT allele (0, 1, 2); 0 with flags for missing / other-ALT / haploid hom-ref.
-- flags bits: 1 = missing (no-call or half-call), 2 = haploid, 4 = phased,
--             8 = carries another ALT allele of the same record (e.g. 0/2 at the row of ALT 1),
--             16 = half-call (one allele missing, e.g. 0/.; also has bit 1),
--             32 = the first allele of the call is this ALT (1|0 vs 0|1).
CREATE TABLE genotype_call (
    variant_key     INTEGER NOT NULL,
    sample_key      INTEGER NOT NULL,
    dosage          UTINYINT NOT NULL,
    flags           UTINYINT NOT NULL,
    dp              USMALLINT,              -- FORMAT/DP if loaded (capped at 65535)
    gq              UTINYINT                -- FORMAT/GQ if loaded (capped at 255)
);
