"""Azure Backup provider for Apache Airflow."""
