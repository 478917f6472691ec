"""A team's datasets, loaded into PostgreSQL and an Iceberg lake on S3."""
