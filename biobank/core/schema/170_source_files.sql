-- Source files of genotype loads checked again after the load: the de novo read evidence
-- (biobank/families/evidence.py) reads AD/DP/GQ from the VCF a batch was loaded from
-- (genotype_load.source) once its SHA-256 is the load's checksum. A file of the same path,
-- size and modification time is not hashed again.
CREATE TABLE genotype_source_check (
    path            VARCHAR PRIMARY KEY,   -- resolved path of the file read
    n_bytes         BIGINT NOT NULL,
    mtime_ns        BIGINT NOT NULL,       -- modification time, ns since the epoch
    sha256          VARCHAR NOT NULL,      -- equal to the load's checksum
    checked_at      TIMESTAMP NOT NULL     -- UTC
);
