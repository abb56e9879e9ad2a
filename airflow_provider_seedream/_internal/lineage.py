"""What the operators tell OpenLineage (their ``get_openlineage_facets_on_complete``): the files read
and written as datasets, named as Airflow's own providers name them (``file://host`` + path, ``s3://bucket``
+ key), and a run facet ``seedream`` with the models, the number of images and what they cost.

Imported only by those methods, which the OpenLineage provider's listener calls: a task without it
never imports the OpenLineage client."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
from airflow.providers.openlineage.extractors import OperatorLineage

from airflow_provider_seedream.contract.records import LineageFacts

RUN_FACET = "seedream"


@attrs.define
class SeedreamRunFacet(RunFacet):
    """A Seedream task's images: the models that made them, how many, and their spend (the generate
    task's XCom ``usage``, or for a download what its asset events report)."""

    models: list[str]
    images: int
    usage: dict[str, Any]


def operator_lineage(facts: LineageFacts | None) -> OperatorLineage[Dataset, RunFacet]:
    """The lineage of a finished task; empty for a task that finished without facts (none recorded)."""
    if facts is None:
        return OperatorLineage()
    return OperatorLineage(
        inputs=_datasets(facts.inputs),
        outputs=_datasets(facts.outputs),
        run_facets={RUN_FACET: SeedreamRunFacet(models=facts.models, images=facts.images, usage=facts.usage)},
    )


def _datasets(locations: list[Any]) -> list[Dataset]:
    unique = {dataset_of(location): None for location in locations}
    return [Dataset(namespace=namespace, name=name) for namespace, name in unique]


def dataset_of(location: Any) -> tuple[str, str]:
    """(namespace, name) of a local path, a storage URI or an ``ObjectStoragePath``. A connection id in
    the URI (``s3://conn@bucket/key``) is not part of the data's name and is left out."""
    text = str(location) if hasattr(location, "protocol") else os.fspath(location)
    if "://" not in text:
        text = Path(os.path.abspath(text)).as_uri()
    parts = urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme in ("file", "local"):
        return f"file://{host}", parts.path
    return f"{parts.scheme}://{host}", parts.path.lstrip("/") or "/"
