"""The Airflow plugin that shows what the pipeline made inside Airflow's UI (3.1+): a gallery tab on
every DAG run and task instance, served by a FastAPI app in the api-server, and the operators' extra
link "Images" to it.

Airflow imports every plugin in every component, task processes included, so this module is cheap:
the app (FastAPI, the api-server's security) is imported only when the api-server asks for it. On
Airflow 2.11 and 3.0, which have no plugin tabs, the module defines no plugin at all.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import BaseOperatorLink

from airflow_provider_seedream.plugins.paths import RUN_TAB_ROUTE, TAB_ROUTE, URL_PREFIX, base_path
from airflow_provider_seedream.version_compat import AIRFLOW_VERSION

GALLERY_AVAILABLE = AIRFLOW_VERSION >= (3, 1)


class SeedreamImagesLink(BaseOperatorLink):
    """The operators' extra link "Images": the task instance's gallery tab."""

    name = "Images"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        task = f"/dags/{quote(ti_key.dag_id)}/runs/{quote(ti_key.run_id)}/tasks/{quote(ti_key.task_id)}"
        mapped = f"/mapped/{ti_key.map_index}" if ti_key.map_index >= 0 else ""
        return f"{base_path()}{task}{mapped}/plugin/{TAB_ROUTE}"


IMAGE_LINKS: tuple[BaseOperatorLink, ...] = (SeedreamImagesLink(),) if GALLERY_AVAILABLE else ()
"""What the operators list as ``operator_extra_links``: nothing where there is no gallery to open."""


class _GalleryApps:
    """``fastapi_apps``, made on first access: only the api-server reads it."""

    def __get__(self, plugin: Any, owner: type) -> list[dict[str, Any]]:
        from airflow_provider_seedream.plugins.gallery_app import gallery_app

        return [{"app": gallery_app, "url_prefix": URL_PREFIX, "name": "Seedream gallery"}]


if GALLERY_AVAILABLE:
    from airflow.providers.common.compat.sdk import AirflowPlugin

    class SeedreamGalleryPlugin(AirflowPlugin):
        """The images a task stored, in a tab of its DAG run and of the task instance."""

        name = "seedream"
        fastapi_apps = _GalleryApps()
        external_views = [
            {
                "name": "Images",
                "href": f"{base_path()}{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}",
                "destination": "dag_run",
                "url_route": RUN_TAB_ROUTE,
            },
            {
                "name": "Images",
                "href": (
                    f"{base_path()}{URL_PREFIX}/tasks/{{DAG_ID}}/{{RUN_ID}}/{{TASK_ID}}?map_index={{MAP_INDEX}}"
                ),
                "destination": "task_instance",
                "url_route": TAB_ROUTE,
            },
        ]
else:
    SeedreamGalleryPlugin = None  # type: ignore[assignment,misc]  # Airflow skips an entry point that is no plugin
