-- Files uploaded to the web import (biobank/service/uploads.py), kept between the
-- preview and the commit on the server, never sent back by the browser. The bytes
-- hold names and identity numbers: they are stored only as a Fernet token under a
-- key derived from the center key (outside the database), bound to the user who
-- uploaded them, and deleted at commit, discard or expiry.
CREATE TABLE web_upload (
    upload_id    VARCHAR PRIMARY KEY,   -- sha256 hex of the random token in the page's URL
    user_name    VARCHAR NOT NULL,      -- only this user may preview, commit or discard it
    kind         VARCHAR NOT NULL CHECK (kind IN ('participants', 'consents', 'specimens')),
    file_name    VARCHAR NOT NULL,      -- as uploaded (shown back, and the import's source)
    checksum     VARCHAR NOT NULL,      -- sha256 of the bytes
    size_bytes   BIGINT NOT NULL,
    created_at   TIMESTAMP NOT NULL,    -- UTC
    expires_at   TIMESTAMP NOT NULL,    -- UTC
    payload      VARCHAR NOT NULL       -- Fernet token of the bytes
);
