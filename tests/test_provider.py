"""Provider registration: the metadata validates against Airflow's schema and Airflow finds the hook."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema
import pytest
from conftest import AIRFLOW_VERSION

from airflow_provider_seedream.contract.connection import UI_FIELD_BEHAVIOUR, ConnectionSettings
from airflow_provider_seedream.get_provider_info import get_provider_info


def test_provider_info_validates_against_airflows_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_entry_point_is_registered():
    (entry,) = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_seedream")
    ]
    assert entry.value == "airflow_provider_seedream.get_provider_info:get_provider_info"
    assert entry.load()()["package-name"] == "airflow-provider-seedream"


def test_every_module_provider_info_names_holds_what_it_is_listed_for():
    """Each module is importable and defines the kind of thing its section is for: a forgotten or
    misfiled module (the sensor under operators, say) fails here."""
    import importlib
    import inspect

    from airflow.providers.common.compat.sdk import BaseHook, BaseOperator, BaseSensorOperator
    from airflow.triggers.base import BaseTrigger

    info = get_provider_info()
    kinds = {
        "hooks": BaseHook,
        "operators": BaseOperator,
        "sensors": BaseSensorOperator,
        "triggers": BaseTrigger,
    }
    for section, base in kinds.items():
        for entry in info[section]:
            for module_name in entry["python-modules"]:
                module = importlib.import_module(module_name)
                defined = [
                    value
                    for value in vars(module).values()
                    if inspect.isclass(value) and issubclass(value, base) and value.__module__ == module_name
                ]
                assert defined, f"{module_name} (listed under {section}) defines no {base.__name__}"
                if section == "operators":
                    assert not any(issubclass(kind, BaseSensorOperator) for kind in defined), module_name
    (decorator,) = info["task-decorators"]
    module_name, _, attribute = decorator["class-name"].rpartition(".")
    assert callable(getattr(importlib.import_module(module_name), attribute))


def test_providers_manager_discovers_hook_and_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-seedream" in manager.providers
    try:  # Airflow 3.2+ resolves hooks in the task SDK's own manager
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        hook = ProvidersManagerTaskRuntime().hooks["seedream"]
    except ImportError:
        hook = manager.hooks["seedream"]
    assert hook.hook_class_name == "airflow_provider_seedream.hooks.seedream.SeedreamHook"
    assert hook.connection_id_attribute_name == "seedream_conn_id"


def test_connection_form():
    """Airflow 3.2+ builds the form from provider info; older versions ask the hook, and only when
    Flask-AppBuilder (the UI of those versions) is installed."""
    from airflow.providers_manager import ProvidersManager

    if AIRFLOW_VERSION < (3, 2) and importlib.util.find_spec("flask_appbuilder") is None:
        pytest.skip("this Airflow builds connection forms with Flask-AppBuilder, which is not installed here")
    manager = ProvidersManager()
    behaviour = manager.field_behaviours["seedream"]
    assert behaviour["hidden_fields"] == ["schema", "port", "login"]
    assert behaviour["relabeling"]["password"] == "API Key"
    assert behaviour["placeholders"]["host"] == "https://api.novita.ai"
    widgets = manager.connection_form_widgets
    assert {f"extra__seedream__{name}" for name in ConnectionSettings.form_fields()} <= set(widgets)


def test_airflow_providers_list_shows_the_provider():
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    listing = next(line for line in result.stdout.splitlines() if line.startswith("[{"))
    names = [provider["package_name"] for provider in json.loads(listing)]
    assert "airflow-provider-seedream" in names


def test_provider_info_holds_the_connection_the_provider_defines():
    """Provider info is plain data; the form in it is the one ConnectionSettings defines, defaults,
    limits and all, so the form, its defaults and the runtime parsing cannot drift apart."""
    (connection_type,) = get_provider_info()["connection-types"]
    assert connection_type["conn-fields"] == ConnectionSettings.form_fields()
    assert connection_type["ui-field-behaviour"] == UI_FIELD_BEHAVIOUR
    defaults = {name: field["schema"]["default"] for name, field in connection_type["conn-fields"].items()}
    settings = ConnectionSettings.from_extra({}).model_dump()
    assert {name: settings[name] for name in defaults} == defaults
    # Every setting is a form field, but for the mapping set in the extra's JSON.
    assert set(settings) - set(defaults) == {"price_per_image"}


def test_provider_info_imports_nothing_of_the_provider():
    """Airflow calls get_provider_info when it lists providers: it must load no other module of ours."""
    code = (
        "import sys; from airflow_provider_seedream.get_provider_info import get_provider_info; "
        "get_provider_info(); "
        "print(sorted(name for name in sys.modules if name.startswith('airflow_provider_seedream')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (
        result.stdout.strip()
        == "['airflow_provider_seedream', 'airflow_provider_seedream.get_provider_info']"
    )


def test_the_gallery_plugin_exists_from_airflow_3_1_only():
    """Airflow skips an entry point that names no plugin: on 2.11 and 3.0 nothing is loaded."""
    from importlib.metadata import entry_points

    from airflow_provider_seedream.plugins import gallery

    (entry,) = [point for point in entry_points(group="airflow.plugins") if point.name == "seedream"]
    assert entry.value == "airflow_provider_seedream.plugins.gallery:SeedreamGalleryPlugin"
    if AIRFLOW_VERSION >= (3, 1):
        assert entry.load().name == "seedream" and [link.name for link in gallery.IMAGE_LINKS] == ["Images"]
    else:
        assert entry.load() is None and gallery.IMAGE_LINKS == ()
