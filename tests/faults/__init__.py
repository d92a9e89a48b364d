"""Fault tests: real Airflow task processes SIGKILLed at the worst moment, then retried by a real scheduler."""
