"""The Iceberg destination kind: a lake in a local folder or on S3, through a SQL catalog."""
