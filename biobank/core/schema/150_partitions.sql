-- Partitioned genotype store: the catalog of the Parquet files holding the calls.
-- Owner: biobank/genomes/partitions.py (writes), the genotype_call / genotype_packed
-- views read the files. Layout and recipe (DuckDB and Spark): docs/store.md.
--
-- A store is single-file (calls in the genotype_call / genotype_packed tables) until
-- it is made partitioned (biobank store partition, or the first region load into a
-- store without calls): then those two tables are replaced by views over the files
-- listed here, and every load writes Parquet files instead. Files live under the
-- directory <store>.parts/ beside the store; `path` is relative to it. A file not
-- listed here (a killed load's, a compacted one not yet removed) is not part of the
-- store: `biobank store verify` lists such files, `biobank store compact` removes them.
CREATE TABLE genotype_partition (
    partition_id    INTEGER PRIMARY KEY,    -- 1, 2, 3 ... in the order files were listed
    batch_id        INTEGER NOT NULL,       -- genotype_batch.batch_id
    contig          VARCHAR NOT NULL,       -- the contig of every row's variant
    region_start    INTEGER NOT NULL,       -- first record POS of the region (1-based)
    region_end      INTEGER NOT NULL,       -- last record POS of the region (inclusive)
    kind            VARCHAR NOT NULL,       -- 'calls' (genotype_call rows) or 'packed'
    path            VARCHAR NOT NULL UNIQUE,-- relative to <store>.parts/
    n_rows          BIGINT NOT NULL,        -- rows in the file
    n_bytes         BIGINT NOT NULL,        -- size of the file
    checksum        VARCHAR NOT NULL,       -- sha256 of the file
    load_id         BIGINT NOT NULL,        -- the load (or compaction) that wrote it
    created_at      TIMESTAMP NOT NULL      -- UTC
);
