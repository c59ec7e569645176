-- Run by the postgres image on its first start (deploy/compose.yaml): Airflow's metadata
-- database beside the app's (POSTGRES_DB). The app migrates its own at start.
CREATE DATABASE airflow OWNER mldeploy;
