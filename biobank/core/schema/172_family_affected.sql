-- Affected status of a family member per phenotype (an HPO term or an ICD-10 code),
-- besides the overall status of family_member.affected. Registry events
-- (entity family_member_affected) so replay reproduces it. Owner:
-- biobank/registry/affected.py.
CREATE TABLE family_member_affected (
    family_id       VARCHAR NOT NULL,
    participant_id  VARCHAR NOT NULL,      -- pseudonym
    phenotype       VARCHAR NOT NULL,      -- HP:0001250 form, or an ICD-10 code (E11.9)
    phenotype_label VARCHAR NOT NULL,      -- the HPO term's name, or 'ICD-10 <code>'
    affected        VARCHAR NOT NULL CHECK (affected IN ('affected', 'unaffected', 'unknown')),
    source          VARCHAR NOT NULL,      -- 'staff' or 'ped:<file>'
    created_at      TIMESTAMP NOT NULL,    -- UTC
    updated_at      TIMESTAMP NOT NULL,    -- UTC
    PRIMARY KEY (family_id, participant_id, phenotype)
);
