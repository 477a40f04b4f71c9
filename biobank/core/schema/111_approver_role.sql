-- The data access committee's role 'approver' (biobank/core/access.py): app_user's
-- CHECK on role is widened. DuckDB cannot alter a CHECK constraint, and os_login_map
-- references app_user, so both tables are rebuilt with their rows.
CREATE TEMP TABLE _app_user_rows AS SELECT * FROM app_user;
CREATE TEMP TABLE _os_login_rows AS SELECT * FROM os_login_map;
DROP TABLE os_login_map;
DROP TABLE app_user;
CREATE TABLE app_user (
    user_name   VARCHAR PRIMARY KEY,
    role        VARCHAR NOT NULL
                CHECK (role IN ('admin', 'registrar', 'researcher', 'auditor', 'approver')),
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMP NOT NULL,      -- UTC
    created_by  VARCHAR NOT NULL
);
INSERT INTO app_user SELECT * FROM _app_user_rows;
CREATE TABLE os_login_map (
    os_login    VARCHAR NOT NULL,
    user_name   VARCHAR NOT NULL REFERENCES app_user (user_name),
    created_at  TIMESTAMP NOT NULL,      -- UTC
    created_by  VARCHAR NOT NULL,
    PRIMARY KEY (os_login, user_name)
);
INSERT INTO os_login_map SELECT * FROM _os_login_rows;
DROP TABLE _app_user_rows;
DROP TABLE _os_login_rows;
