"""The connection test: the key and base URL checked against every model's endpoint, without
generating (or billing) anything.

An empty JSON object is posted to each endpoint. Without a prompt the API cannot generate, so an
endpoint answers 400 once it has accepted the key, and 401/403 (or a key-related reason) when it has
not; an account can be refused some models only (403 ``API_NOT_ALLOWED``). No retries are made, and
redirects are not followed."""

from __future__ import annotations

import time

import requests

from airflow_provider_seedream._internal.transport import answer_error, transport_error
from airflow_provider_seedream.contract.exceptions import SeedreamAuthError, SeedreamError
from airflow_provider_seedream.contract.redact import Secrets
from airflow_provider_seedream.contract.specs import MODEL_SPECS


def check_models(
    session: requests.Session, base_url: str, timeouts: tuple[float, float], secrets: Secrets
) -> tuple[bool, str]:
    """``(passed, message)`` as ``test_connection`` answers: passed when at least one model accepted
    the key; the message names every model that refused it, and why."""
    accepted, refused = [], {}
    for spec in MODEL_SPECS.values():
        try:
            problem = probe_endpoint(session, base_url, spec.path, timeouts, secrets)
        except SeedreamError as err:  # no answer, or bad extras: every endpoint would say the same
            return False, str(err)
        if problem is None:
            accepted.append(spec.name)
        else:
            refused[spec.name] = problem
    refusals = "; ".join(f"{name}: {problem}" for name, problem in refused.items())
    if not accepted:
        reasons = set(refused.values())
        return False, reasons.pop() if len(reasons) == 1 else refusals
    message = f"Connected to {base_url}; the API key was accepted for {', '.join(accepted)}"
    return True, f"{message}, and refused for {refusals}" if refused else f"{message}."


def probe_endpoint(
    session: requests.Session,
    base_url: str,
    path: str,
    timeouts: tuple[float, float],
    secrets: Secrets,
) -> str | None:
    """Post ``{}`` to one endpoint, which cannot generate: ``None`` when it accepted the key (it answers
    400 for the missing prompt), else what it answered."""
    started = time.monotonic()
    try:
        response = session.post(
            f"{base_url}{path}", json={}, timeout=timeouts, stream=True, allow_redirects=False
        )
    except requests.RequestException as err:
        raise transport_error(err, base_url, timeouts) from None
    with response:
        error = answer_error(response, timeouts[1], started, secrets)
    if response.ok or (response.status_code == 400 and not isinstance(error, SeedreamAuthError)):
        return None
    return str(error)
