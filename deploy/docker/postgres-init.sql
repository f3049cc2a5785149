-- Run once by the postgres:15 image on an empty data volume (docker-entrypoint-initdb.d), as
-- POSTGRES_USER (calsync by default), which becomes the owner of everything created here.
-- Mirrors what deploy/local/infra.sh does for the Docker-less stack.
-- Keep the list in step with CALSYNC_DATABASES in .env.example.

-- Databases created later from template1 (e.g. by tests) get btree_gist too.
\connect template1
CREATE EXTENSION IF NOT EXISTS btree_gist;

\connect postgres
CREATE DATABASE connector;
CREATE DATABASE sync_worker;
CREATE DATABASE availability;
CREATE DATABASE calsync_test;

\connect connector
CREATE EXTENSION IF NOT EXISTS btree_gist;
\connect sync_worker
CREATE EXTENSION IF NOT EXISTS btree_gist;
\connect availability
CREATE EXTENSION IF NOT EXISTS btree_gist;
\connect calsync_test
CREATE EXTENSION IF NOT EXISTS btree_gist;
