"""The Seedream API contract, as plain Python (pydantic, no Airflow): models and their rules,
requests, answers, image links, the connection's settings and the errors."""
