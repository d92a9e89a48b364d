"""End-to-end tests against a real Airflow 3 stack (api-server, scheduler, dag-processor, triggerer)."""
