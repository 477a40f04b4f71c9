-- The center's reference genome: the contigs of its FASTA index, against which every
-- genotype load is checked (a header contig of another length, a record on a contig the
-- reference lacks). Empty: no reference configured. Owner: biobank/genomes/reference.py.
CREATE TABLE reference_contig (
    ordinal         INTEGER PRIMARY KEY,   -- 1, 2 ... in the index's order
    contig          VARCHAR NOT NULL UNIQUE,
    length          BIGINT NOT NULL CHECK (length > 0),
    source          VARCHAR NOT NULL,      -- path of the .fai it was read from
    sha256          VARCHAR NOT NULL,      -- of that .fai
    configured_at   TIMESTAMP NOT NULL     -- UTC
);
