-- The warehouse lives in its own database beside the Dagster instance's.
CREATE DATABASE warehouse;
