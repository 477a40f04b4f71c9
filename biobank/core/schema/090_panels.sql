-- Reference panels (1000 Genomes and similar): external datasets that belong to no
-- participant. Owner: biobank/genomes/panels.py (writes and reads).
--
-- Panel samples are NOT in genotype_sample / sequencing_sample, so no participant
-- query, consent rule, statistic or research sandbox table can see them. A panel
-- keeps only what its two uses need:
--   * per-population allele counts and frequencies (panel_frequency), for
--     "rare in the population" filters and annotation;
--   * a PCA model (panel_pca_snp: per-SNP mean, scale and loadings; panel_sample.pcs:
--     the panel samples' coordinates), for projecting participants and inferring
--     their ancestry.
-- Contigs are stored canonical: without a leading 'chr' ('1', 'X'; 'M' for chrM/MT),
-- see biobank.genomes.filters.canonical_contig_sql.

CREATE SEQUENCE panel_seq START 1;

CREATE TABLE panel (
    panel_id        INTEGER PRIMARY KEY,
    name            VARCHAR NOT NULL UNIQUE,
    description     VARCHAR,
    source          VARCHAR NOT NULL,        -- the VCF paths as given, ';'-separated
    checksum        VARCHAR NOT NULL,        -- sha256 over the VCFs' and the population table's checksums
    load_id         BIGINT NOT NULL,         -- provenance.load_id
    n_samples       INTEGER NOT NULL,
    n_variants      BIGINT NOT NULL,         -- biallelic rows (multi-allelic records split)
    n_pca_snps      INTEGER NOT NULL,        -- SNPs of the PCA model (common, biallelic, LD-pruned)
    n_components    INTEGER NOT NULL,
    explained_variance_ratio DOUBLE[],       -- per component
    loaded_by       VARCHAR NOT NULL,
    loaded_at       TIMESTAMP NOT NULL       -- UTC
);

-- The panel's samples: public identifiers, their population and coordinates on the panel PCs.
CREATE TABLE panel_sample (
    panel_id        INTEGER NOT NULL,
    sample_id       VARCHAR NOT NULL,
    population      VARCHAR NOT NULL,
    superpopulation VARCHAR,
    pcs             DOUBLE[],                -- coordinates on PC1..PCk
    PRIMARY KEY (panel_id, sample_id)
);

-- Allele counts per group: one row per (variant ALT allele, group).
-- grouping: 'population', 'superpopulation' or 'all' (group 'ALL'); group names are unique
-- within a panel (a superpopulation made of one same-named population is listed once).
CREATE TABLE panel_frequency (
    panel_id        INTEGER NOT NULL,
    contig          VARCHAR NOT NULL,        -- canonical ('1', 'X')
    position        INTEGER NOT NULL,        -- 1-based, as in the VCF
    ref             VARCHAR NOT NULL,
    alt             VARCHAR NOT NULL,
    grouping        VARCHAR NOT NULL,
    population      VARCHAR NOT NULL,
    allele_count    INTEGER NOT NULL,        -- copies of this ALT among called alleles
    allele_number   INTEGER NOT NULL,        -- called alleles (haploid calls count one)
    frequency       DOUBLE                   -- allele_count / allele_number; NULL when 0 called
);

-- The PCA model: SNP i of the model, its panel mean ALT count, scale and loadings.
CREATE TABLE panel_pca_snp (
    panel_id        INTEGER NOT NULL,
    snp_index       INTEGER NOT NULL,        -- 0-based row of the model
    contig          VARCHAR NOT NULL,        -- canonical
    position        INTEGER NOT NULL,
    ref             VARCHAR NOT NULL,
    alt             VARCHAR NOT NULL,
    mean            DOUBLE NOT NULL,         -- mean ALT count in the panel (2p)
    scale           DOUBLE NOT NULL,         -- Patterson scale sqrt(p (1 - p))
    loadings        DOUBLE[] NOT NULL,       -- this SNP's weight on PC1..PCk
    PRIMARY KEY (panel_id, snp_index)
);
