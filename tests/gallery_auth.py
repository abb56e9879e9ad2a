"""An auth manager with per-DAG permissions for the gallery's tests and the deployment tiers: Airflow's
SimpleAuthManager, whose user ``outsider`` may read every DAG but ``SEEDREAM_HIDDEN_DAG`` (default
``seedream_cache_test``). SimpleAuthManager itself grants by role only; this tests the gallery's check
against the auth manager's interface, which is what the FAB provider's per-DAG permissions answer
too. Every other user, and every other question, is SimpleAuthManager's."""

from __future__ import annotations

import os

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

HIDDEN_DAG = os.environ.get("SEEDREAM_HIDDEN_DAG", "seedream_cache_test")


class PerDagAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if user.get_name() == "outsider" and details is not None and details.id == HIDDEN_DAG:
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
