-- Packed calls: the pgen-like dense half of the genotype store (see docs/store.md).
-- Owner: biobank/vcf.py (writes), biobank/genotypes.py and biobank/stats.py (read).
--
-- A (batch, variant) whose calls are many (at least 1 in 16 of the batch's samples
-- not diploid hom-ref) and plain (unphased diploid 0/1, 1/1 or ./., no other ALT of a
-- multi-allelic record, no DP/GQ kept) is stored as two bit planes over the batch's
-- samples instead of genotype_call rows: 2 bits a sample instead of ~3.5 bytes a call.
-- Each plane is a list of ceil(n_samples / 64) 64-bit words; the batch's i-th sample in
-- sample_key order is bit i % 64 (least significant first) of word i // 64 (1-based
-- element i // 64 + 1 in SQL). Code (hi, lo): (0, 0) hom-ref, (0, 1) 0/1, (1, 0) 1/1,
-- (1, 1) missing (./.). A (batch, variant) is either packed here or sparse in
-- genotype_call, never both; stores loaded before this table stay sparse.
CREATE TABLE genotype_packed (
    batch_id        INTEGER NOT NULL,
    variant_key     INTEGER NOT NULL,
    lo              UBIGINT[] NOT NULL,     -- 0/1 or missing
    hi              UBIGINT[] NOT NULL      -- 1/1 or missing
);

-- Each genotyped sample's bit position in its batch's planes (sample_key order).
CREATE VIEW genotype_sample_position AS
SELECT batch_id, sample_key,
       CAST(row_number() OVER (PARTITION BY batch_id ORDER BY sample_key) - 1 AS INTEGER) AS pos
FROM genotype_sample;

-- Every stored call, sparse or packed, as genotype_call rows (packed calls have
-- no DP/GQ). Expanding packed rows costs one bit test per sample (about 1.7 s for
-- all 15 M calls of 3,000 x 45,000): filter by variant_key where you can.
CREATE VIEW genotype_call_all AS
SELECT variant_key, sample_key, dosage, flags, dp, gq FROM genotype_call
UNION ALL
SELECT variant_key, sample_key,
    CAST(CASE code WHEN 3 THEN 0 ELSE code END AS UTINYINT) AS dosage,
    -- ./. = 1 (FLAG_MISSING); 1/1 has its first allele ALT = 32 (FLAG_FIRST_ALLELE)
    CAST(CASE code WHEN 3 THEN 1 WHEN 2 THEN 32 ELSE 0 END AS UTINYINT) AS flags,
    CAST(NULL AS USMALLINT) AS dp,
    CAST(NULL AS UTINYINT) AS gq
FROM (
    SELECT p.variant_key, s.sample_key,
        CAST(((p.lo[s.word] >> s.bit) & 1) + 2 * ((p.hi[s.word] >> s.bit) & 1) AS INTEGER)
            AS code
    FROM genotype_packed p
    JOIN (SELECT batch_id, sample_key,
                 CAST(pos // 64 + 1 AS INTEGER) AS word,  -- 1-based list element
                 CAST(pos % 64 AS UBIGINT) AS bit
          FROM genotype_sample_position) s ON s.batch_id = p.batch_id
)
WHERE code > 0;

-- genotype_load.n_calls counts the calls stored by a load, packed ones included.
