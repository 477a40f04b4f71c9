-- Peer authentication of the command line (biobank.core.access.peer_principal): which
-- operating-system logins may act as which biobank users, set by an admin, the way
-- PostgreSQL's pg_ident.conf maps system users to database roles.
CREATE TABLE os_login_map (
    os_login    VARCHAR NOT NULL,
    user_name   VARCHAR NOT NULL REFERENCES app_user (user_name),
    created_at  TIMESTAMP NOT NULL,
    created_by  VARCHAR NOT NULL,
    PRIMARY KEY (os_login, user_name)
);
