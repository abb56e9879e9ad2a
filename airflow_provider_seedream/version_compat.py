"""Every difference between the supported Airflow versions (2.11, 3.0-3.3) that the provider's own code
has to know about, in one place. What ``apache-airflow-providers-common-compat`` already bridges
(``airflow.providers.common.compat.sdk``) is imported from there instead."""

from __future__ import annotations

from typing import Any


def _airflow_version() -> tuple[int, int]:
    # airflow.__version__, not importlib.metadata: Airflow is imported already, and reading the
    # installed distributions costs about 2 ms on every DAG parse.
    from airflow import __version__

    major, minor = __version__.split(".")[:2]
    return int(major), int(minor)


AIRFLOW_VERSION = _airflow_version()
"""(major, minor) of the installed Airflow: what the tests skip and expect by."""


def storage_conn_id(path: Any) -> str | None:
    """The Airflow connection an ``ObjectStoragePath`` was made with: a property since Airflow 3, a
    storage option before."""
    conn_id: str | None = getattr(path, "conn_id", None) or path.storage_options.get("conn_id")
    return conn_id


def connection_form_widgets(fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The connection form's extra fields (``ConnectionSettings.form_fields()``) as the Flask-AppBuilder
    widgets Airflow before 3.2 asks a hook for; imported only there, where the old UI is installed."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, IntegerField, StringField
    from wtforms.validators import Optional

    widgets: dict[str, Any] = {}
    for name, field in fields.items():
        label, kinds = lazy_gettext(field["label"]), field["schema"]["type"]
        if "boolean" in kinds:
            widgets[name] = BooleanField(label, description=field["description"])
        else:
            kind = IntegerField if "integer" in kinds else StringField
            widgets[name] = kind(
                label,
                widget=BS3TextFieldWidget(),
                validators=[Optional()],
                description=field["description"],
            )
    return widgets
