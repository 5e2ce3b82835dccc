"""docs/operations.md cannot drift: its settings tables list exactly what the code reads from the environment."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

DOC = ROOT / "docs" / "operations.md"
CONFIG = ROOT / "expertbook" / "config.py"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
ENV_EXAMPLE = ROOT / "deploy" / "expertbook.env.example"


def _is_environment(node: ast.expr) -> bool:
    """``env`` / ``environ`` (how config.py names the mapping it reads) or ``os.environ``."""
    if isinstance(node, ast.Name):
        return node.id in {"env", "environ"}
    return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"


def environment_reads(path: Path) -> set[str]:
    """Every variable name ``path`` reads from the environment: ``env.get("X")``, ``env["X"]``, ``os.environ.get("X")``, ``os.getenv("X")``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        key = None
        if isinstance(node, ast.Call) and node.args:
            function = node.func
            if isinstance(function, ast.Attribute) and function.attr == "get" and _is_environment(function.value):
                key = node.args[0]
            elif isinstance(function, ast.Attribute) and function.attr == "getenv" and isinstance(function.value, ast.Name) and function.value.id == "os":
                key = node.args[0]
        elif isinstance(node, ast.Subscript) and _is_environment(node.value):
            key = node.slice
        if key is not None:
            assert isinstance(key, ast.Constant) and isinstance(key.value, str), f"{path.name}:{node.lineno} reads a computed variable name"
            names.add(key.value)
    return names


def documented(heading: str) -> list[str]:
    """The variables named in the first column of the table under ``heading`` in docs/operations.md."""
    text = DOC.read_text()
    start = re.search(rf"^#+ {re.escape(heading)}\s*$", text, re.M)
    assert start, f"no '{heading}' section in {DOC.name}"
    section = text[start.end():]
    rows = []
    for line in section.splitlines():
        if line.startswith("#"):
            break
        if line.startswith("| `"):
            rows.extend(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    assert rows, f"no table under '{heading}'"
    return rows


def test_the_environment_readers_are_found():
    # If config.py stopped reading through `env`, the check below would pass on nothing.
    assert {"SECRET_KEY", "DATABASE_URL", "PROXY_HOPS", "TOKEN_ENCRYPTION_KEYS"} <= environment_reads(CONFIG)
    assert {"GUNICORN_BIND", "WEB_CONCURRENCY"} <= environment_reads(GUNICORN_CONF)


def test_every_setting_config_py_reads_is_documented_once_and_nothing_else():
    rows = documented("Settings")
    assert sorted(name for name in set(rows) if rows.count(name) > 1) == [], "listed twice"
    read = environment_reads(CONFIG)
    assert sorted(read - set(rows)) == [], "read by expertbook/config.py but not in docs/operations.md"
    assert sorted(set(rows) - read) == [], "in docs/operations.md but not read by expertbook/config.py"


def test_every_setting_gunicorn_conf_reads_is_documented_and_nothing_else():
    rows = documented("gunicorn")
    assert sorted(environment_reads(GUNICORN_CONF)) == sorted(rows)


def test_the_restart_table_names_each_setting_at_most_once_and_covers_the_rest():
    """"Changing settings" says which restart each setting needs; a setting it does not name needs both."""
    text = DOC.read_text()
    section = text[text.index("## Changing settings"):]
    section = section[:section.index("\n## ", 1)]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| ") and not line.startswith(("| kind", "| ---"))]
    named = [name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row[2])]
    known = set(documented("Settings")) | set(documented("gunicorn"))
    assert sorted(set(named) - known) == [], "named in the restart table but not a setting"
    assert sorted(name for name in set(named) if named.count(name) > 1) == []
    assert {row[-2].strip().split()[0].rstrip(":") for row in rows} == {"web", "workers", "both"}
    assert any("every other setting" in row[1] and row[-2].strip().startswith("both") for row in rows)
    # gunicorn's settings are read by gunicorn alone: a web restart.
    gunicorn_row = next(row for row in rows if "GUNICORN_BIND" in row[2])
    assert set(re.findall(r"`([A-Z][A-Z0-9_]*)`", gunicorn_row[2])) == set(documented("gunicorn")) and gunicorn_row[-2].strip() == "web"


def test_the_environment_file_example_sets_only_known_settings():
    known = environment_reads(CONFIG) | environment_reads(GUNICORN_CONF)
    names = re.findall(r"^#?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M)
    assert names and sorted(set(names) - known) == []
    values = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M))
    assert values["EXPERTBOOK_ENV"] == "production" and values["PROXY_HOPS"] == "1"


def test_the_files_the_guide_names_exist():
    for path in sorted(set(re.findall(r"\]\(\.\./([^)#]+)\)", DOC.read_text()))):
        assert (ROOT / path).exists(), path
    for path in re.findall(r"`(deploy/[^`\s]+)`", DOC.read_text()):
        if "*" not in path:
            assert (ROOT / path).exists(), path


def _documented_defaults(heading: str) -> dict[str, str]:
    """variable -> the default the table under ``heading`` gives, when it starts with a value in backticks."""
    text = DOC.read_text()
    section = text[re.search(rf"^#+ {re.escape(heading)}\s*$", text, re.M).end():]
    defaults = {}
    for line in section.splitlines():
        if line.startswith("#"):
            break
        cells = line.split("|")
        if line.startswith("| `") and len(cells) > 3:
            name = re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[1])
            value = re.match(r"\s*`([^`]*)`", cells[2])
            if name and value and not re.fullmatch(r"[A-Z][A-Z0-9_]*", value.group(1)):
                defaults[name[0]] = value.group(1)
    return defaults


def test_every_documented_default_is_config_pys():
    """Setting a variable to the default the guide gives changes nothing in the configuration: the guide and
    config.py agree (production, as the services run)."""
    from expertbook.config import from_env

    base = {"EXPERTBOOK_ENV": "production"}
    defaults = _documented_defaults("Settings")
    assert len(defaults) >= 40 and defaults["MAIL_CLAIM_SECONDS"] == "30"
    wrong = {name: value for name, value in defaults.items() if from_env({**base, name: value}) != from_env(base)}
    assert wrong == {}, "docs/operations.md gives defaults config.py does not have"


def test_every_documented_gunicorn_default_is_gunicorn_conf_pys(monkeypatch):
    import runpy

    for name in documented("gunicorn"):
        monkeypatch.delenv(name, raising=False)
    base = runpy.run_path(str(GUNICORN_CONF))
    for name, value in _documented_defaults("gunicorn").items():
        monkeypatch.setenv(name, value)
        changed = runpy.run_path(str(GUNICORN_CONF))
        monkeypatch.delenv(name)
        assert {k: v for k, v in changed.items() if not callable(v)} == {k: v for k, v in base.items() if not callable(v)}, name
