-- Partner centres of the national network, the Beacon's query budget, and the seam
-- to the data access requests of issue 16. Owner: biobank/research/beacon/partners.py.
--
-- A partner centre authenticates with a bearer token issued once by
-- 'biobank partner add'; only its sha256 is kept (tokens are 256-bit random, so a
-- plain hash is enough: nobody can guess a preimage). purpose is the GA4GH DUO-style
-- research purpose the network agreement with that centre covers (HMB, DS:E11 ...):
-- every answer it gets counts only participants whose consent permits it.
CREATE TABLE partner_centre (
    partner_name  VARCHAR PRIMARY KEY,
    token_hash    VARCHAR NOT NULL UNIQUE,  -- sha256 hex of the bearer token
    purpose       VARCHAR NOT NULL,
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMP NOT NULL,       -- UTC
    created_by    VARCHAR NOT NULL,
    revoked_at    TIMESTAMP                 -- UTC
);

-- Queries answered per requester per UTC day (partner name, or 'anonymous:<client>').
CREATE TABLE beacon_query_budget (
    requester   VARCHAR NOT NULL,
    day         DATE NOT NULL,
    n_queries   INTEGER NOT NULL,
    PRIMARY KEY (requester, day)
);

-- Record-level Beacon answers need an approved data access request. Until the
-- data access workflow (issue 16) is merged, its approvals are mirrored here:
-- biobank.research.beacon.partners.approved_request_for reads this table only.
CREATE TABLE beacon_approved_request (
    request_id    VARCHAR PRIMARY KEY,
    requester     VARCHAR NOT NULL,         -- partner_centre.partner_name
    purpose       VARCHAR NOT NULL,         -- the approved purpose
    approved_at   TIMESTAMP NOT NULL,       -- UTC
    expires_on    DATE                      -- NULL: no end date
);
