"""The gallery's FastAPI app, mounted by the api-server at ``/seedream`` (imported by it only).

Airflow does not protect a plugin's routes: every route here requires a user the auth manager
lets read the DAG's task instances (``requires_access_dag``, as the DAG's own pages), so an
anonymous request gets 401 and a user without access to the DAG 403. What is shown is found from
the ids in the URL only: the task instances' XCom names their images, which DAG authors wrote, so
``_internal.gallery`` reads only below the configured roots and serves only proven bytes; anything
else is 404.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterator
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from airflow_provider_seedream._internal.gallery import (
    NOT_CONFIGURED,
    SERVE_CHUNK,
    GalleryImage,
    Thumbnails,
    gallery_roots,
    proven_bytes,
    run_spend,
    task_images,
)
from airflow_provider_seedream.contract.exceptions import SeedreamDownloadError
from airflow_provider_seedream.plugins.paths import image_path

log = logging.getLogger(__name__)
READ_TASK_INSTANCES = [
    Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE))
]
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"
    ),
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "same-origin",
}
_XCOM_KEYS = ("return_value", "manifest", "usage")
_OUR_KEYS = ("manifest", "usage")

gallery_app = FastAPI(title="Seedream gallery", docs_url=None, redoc_url=None, openapi_url=None)
thumbnails = Thumbnails()


@gallery_app.middleware("http")
async def _security_headers(request: Request, call_next: Any) -> Response:
    response: Response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    return response


class _Task:
    """One task instance of the run that stored images, and what its XCom says."""

    def __init__(self, dag_id: str, run_id: str, task_id: str, map_index: int, name: str | None) -> None:
        self.task_id, self.map_index, self.name = task_id, map_index, name
        self.label = f"{dag_id} {run_id} {task_id}" + (f"[{map_index}]" if map_index >= 0 else "")
        """Who wrote what is shown, for the warnings about it."""
        self.xcom: dict[str, Any] = {}

    def images(self) -> list[GalleryImage]:
        try:
            roots = gallery_roots(log)
            return task_images(
                self.xcom.get("return_value"), self.xcom.get("manifest"), roots, log, self.label
            )
        except SeedreamDownloadError as err:  # a store could not be read
            log.warning("%s: its images could not be listed: %s", self.label, err)
            return []


def _value(raw: Any) -> Any:
    """An XCom value as the worker wrote it: kept as JSON, or as a JSON string, which is decoded."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _run_tasks(
    dag_id: str, run_id: str, task_id: str | None = None, map_index: int | None = None
) -> list[_Task]:
    """The run's task instances whose XCom names stored images (only ``task_id``'s, at ``map_index``,
    when given: an image's request reads one task instance), in task and map index order.

    :raises HTTPException: 404, the DAG has no such run."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        if session.scalar(select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)) is None:
            raise HTTPException(404, "No such DAG run")
        of_run = [XComModel.dag_id == dag_id, XComModel.run_id == run_id]
        if task_id is not None:
            of_run.append(XComModel.task_id == task_id)
        if map_index is not None:
            of_run.append(XComModel.map_index == map_index)
        # Our tasks: a download pushes "manifest", a generation "usage". Other tasks' values stay unread.
        ours = select(XComModel.task_id).where(*of_run, XComModel.key.in_(_OUR_KEYS)).distinct()
        rows = session.execute(
            select(XComModel.task_id, XComModel.map_index, XComModel.key, XComModel.value).where(
                *of_run, XComModel.task_id.in_(ours), XComModel.key.in_(_XCOM_KEYS)
            )
        ).all()
        names = {
            (task, index): name
            for task, index, name in session.execute(
                # rendered_map_index is a hybrid property, whose SQL expression SQLAlchemy's stubs miss.
                select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.rendered_map_index).where(  # type: ignore[call-overload]
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
                )
            ).all()
        }
    tasks: dict[tuple[str, int], _Task] = {}
    for task_id, map_index, key, raw in rows:
        task = tasks.setdefault(
            (task_id, map_index), _Task(dag_id, run_id, task_id, map_index, names.get((task_id, map_index)))
        )
        task.xcom[key] = _value(raw)
    return [tasks[key] for key in sorted(tasks)]


def _task(dag_id: str, run_id: str, task_id: str, map_index: int) -> _Task:
    tasks = _run_tasks(dag_id, run_id, task_id, map_index)
    if not tasks:
        raise HTTPException(404, "No images of such a task instance")
    return tasks[0]


def _proven(dag_id: str, run_id: str, task_id: str, map_index: int, index: int) -> tuple[GalleryImage, Any]:
    """The image and its proven bytes (a file to close), or 404: no such image, or its record lies."""
    task = _task(dag_id, run_id, task_id, map_index)
    image = next((image for image in task.images() if image.index == index), None)
    data = proven_bytes(image, log, task.label) if image is not None else None
    if image is None or data is None:
        raise HTTPException(404, "No such image")
    return image, data


def _map_index(text: str | None) -> int:
    """The tab's ``map_index``: the UI leaves ``{MAP_INDEX}`` unfilled for a task that is not mapped."""
    try:
        return int(text) if text is not None else -1
    except ValueError:
        return -1


@gallery_app.get("/runs/{dag_id}/{run_id}", dependencies=READ_TASK_INSTANCES, response_class=HTMLResponse)
def run_gallery(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
    """Every image the run's tasks stored, by task and map index."""
    tasks = _run_tasks(dag_id, run_id)
    spend = run_spend([task.xcom.get("usage") for task in tasks])
    sections = [
        _section(request, dag_id, run_id, task, images) for task in tasks if (images := task.images())
    ]
    empty = "No task of this run has stored images yet." if gallery_roots(log) else NOT_CONFIGURED
    header = [f'<p class="spend">{html.escape(spend)}</p>'] if spend else []
    return _page(f"Images of {run_id}", header + (sections or [f"<p>{html.escape(empty)}</p>"]))


@gallery_app.get(
    "/tasks/{dag_id}/{run_id}/{task_id}", dependencies=READ_TASK_INSTANCES, response_class=HTMLResponse
)
def task_gallery(
    request: Request, dag_id: str, run_id: str, task_id: str, map_index: str | None = None
) -> HTMLResponse:
    """The images one task instance stored."""
    index = _map_index(map_index)
    tasks = _run_tasks(dag_id, run_id, task_id, index)
    images = tasks[0].images() if tasks else []
    empty = "This task instance has stored no images." if gallery_roots(log) else NOT_CONFIGURED
    body = _section(request, dag_id, run_id, tasks[0], images) if images else f"<p>{html.escape(empty)}</p>"
    return _page(f"Images of {task_id}", [body])


@gallery_app.get("/images/{dag_id}/{run_id}/{task_id}/{map_index}/{index}", dependencies=READ_TASK_INSTANCES)
def full_image(dag_id: str, run_id: str, task_id: str, map_index: int, index: int) -> StreamingResponse:
    image, data = _proven(dag_id, run_id, task_id, map_index, index)

    def chunks() -> Iterator[bytes]:
        with data:
            while chunk := data.read(SERVE_CHUNK):
                yield chunk

    return StreamingResponse(
        chunks(), media_type=image.image.content_type, headers={"Content-Length": str(image.image.bytes)}
    )


@gallery_app.get(
    "/thumbnails/{dag_id}/{run_id}/{task_id}/{map_index}/{index}", dependencies=READ_TASK_INSTANCES
)
def thumbnail(dag_id: str, run_id: str, task_id: str, map_index: int, index: int) -> Response:
    image, data = _proven(dag_id, run_id, task_id, map_index, index)
    try:
        with data:
            small, media_type = thumbnails.of(image, data.read())
    except SeedreamDownloadError as err:
        log.warning("No thumbnail of %s: %s", image.place, err)
        raise HTTPException(404, "The image could not be read") from None
    return Response(small, media_type=media_type)


def _section(request: Request, dag_id: str, run_id: str, task: _Task, images: list[GalleryImage]) -> str:
    root = request.scope.get("root_path", "")
    title = task.task_id if task.map_index < 0 else f"{task.task_id} [{task.name or task.map_index}]"
    cards = []
    for image in images:
        where = (dag_id, run_id, task.task_id, task.map_index, image.index)
        stored, made = image.image, image.facts
        facts = [
            f"{stored.width} x {stored.height} px" if stored.width and stored.height else None,
            made.model,
            f"${made.estimated_cost_usd:.3f} (estimate)" if made.estimated_cost_usd is not None else None,
        ]
        full, small = (html.escape(root + image_path(kind, *where)) for kind in ("images", "thumbnails"))
        cards.append(
            f'<figure class="card"><a href="{full}"><img src="{small}" alt="#{image.index + 1}" '
            f'loading="lazy"></a><figcaption><b>#{image.index + 1}</b> '
            f"{html.escape(' · '.join(fact for fact in facts if fact))}"
            f"<br><code>{html.escape(stored.location)}</code>"
            + (f"<br><i>{html.escape(made.prompt)}</i>" if made.prompt else "")
            + "</figcaption></figure>"
        )
    return f'<section><h2>{html.escape(title)}</h2><div class="grid">{"".join(cards)}</div></section>'


def _page(title: str, sections: list[str]) -> HTMLResponse:
    style = (
        "body{font-family:system-ui,sans-serif;margin:16px;color:#1f2933}"
        ".grid{display:flex;flex-wrap:wrap;gap:16px}.card{width:320px;margin:0}"
        ".card img{max-width:320px;max-height:320px;display:block;background:#eee}"
        "figcaption{font-size:13px;margin-top:6px;word-break:break-all}h2{font-size:16px}"
    )
    return HTMLResponse(
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>{''.join(sections)}</body></html>"
    )
