"""Settings: one validator for pyproject.toml, ``migrafix.hook(...)`` and ``-x``. A mistake is
an error naming the setting and where it came from; through alembic, the nearest pyproject.toml
is read and the sources override each other in order."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from harness import AlembicProject, body_lines

import migrafix
from migrafix.settings import (
    ColumnRename,
    Settings,
    SettingsError,
    TableRename,
    find_pyproject,
    parse_rename,
    x_arguments_to_raw,
)

SOURCE = "/app/pyproject.toml [tool.migrafix]"


def error_of(raw: dict[str, object], source: str = SOURCE) -> str:
    with pytest.raises(SettingsError) as info:
        Settings().merged(raw, source)
    return str(info.value)


# --- validation -----------------------------------------------------------------------------


def test_unknown_key_names_key_source_and_known_keys() -> None:
    """A misspelled key is an error, not a setting silently ignored."""
    message = error_of({"selekt": ["not-null-add"]})
    assert message.startswith(f"{SOURCE}: unknown migrafix setting 'selekt' (known: ")
    assert "select" in message and "ignore" in message


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("interactive", "maybe", "expected true or false, got 'maybe'"),
        ("split_concurrent_revisions", 2, "expected true or false, got 2"),
        ("select", 3, "expected a string or a list of strings, got 3"),
        ("ignore", ["not-null-add", 7], "expected a string or a list of strings"),
        ("concurrent_indexes", "sometimes", "expected 'explicit' or 'always', got 'sometimes'"),
        ("naming_convention", ["fk_%(table_name)s"], "expected a table of strings"),
    ],
)
def test_wrong_type_names_setting_and_source(key: str, value: object, complaint: str) -> None:
    """Each wrong type is reported with the setting's name, its source and what was wrong."""
    message = error_of({key: value})
    assert message.startswith(f"{SOURCE}: setting {key!r}: ")
    assert complaint in message


def test_unknown_rule_in_ignore_lists_the_rules() -> None:
    message = error_of({"ignore": ["not-null-add", "not-nul-add"]})
    assert message.startswith(f"{SOURCE}: setting 'ignore': unknown rule 'not-nul-add' (rules: ")
    assert "drop-add-rename" in message and "unnamed-constraint" in message


def test_rule_names_may_be_comma_separated() -> None:
    """The -x spelling: ``migrafix.select=a,b``."""
    settings = Settings().merged({"select": "not-null-add,unnamed-constraint"}, SOURCE)
    assert settings.select == ("not-null-add", "unnamed-constraint")


def test_malformed_rename_names_setting_and_value() -> None:
    message = error_of({"renames": ["customer.name"]})
    assert message == (
        f"{SOURCE}: setting 'renames': rename 'customer.name' is not "
        "TABLE.OLD:NEW, OLD_TABLE:NEW_TABLE or SCHEMA.OLD_TABLE:SCHEMA.NEW_TABLE"
    )


@pytest.mark.parametrize("text", ["customer.name", "customer.name:", ":full_name",
                                  "customer.:full_name", ".name:full_name",
                                  "client:billing.customer", "a.b.client:a.b.customer",
                                  "billing.client:billing.", "billing.:billing.customer"])
def test_parse_rename_rejects(text: str) -> None:
    with pytest.raises(SettingsError, match=r"is not TABLE\.OLD:NEW, OLD_TABLE:NEW_TABLE or "
                                            r"SCHEMA\.OLD_TABLE:SCHEMA\.NEW_TABLE"):
        parse_rename(text)


def test_parse_rename_refuses_a_move_to_another_schema() -> None:
    with pytest.raises(SettingsError, match="moves a table to another schema: a rename keeps "
                                            "its schema"):
        parse_rename("billing.client:crm.customer")


def test_parse_rename_column_and_table() -> None:
    assert parse_rename("customer.name:full_name") == ColumnRename("customer", "name", "full_name")
    assert parse_rename("client:customer") == TableRename("client", "customer")
    # A schema on both sides: a table of that schema. On the left only: a column rename.
    assert parse_rename("billing.client:billing.customer") == TableRename(
        "client", "customer", schema="billing")
    assert str(TableRename("client", "customer", schema="billing")) == \
        "billing.client:billing.customer"
    assert parse_rename("billing.client:customer") == ColumnRename("billing", "client",
                                                                   "customer")


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        # -x backfill=order.status (no SQL)
        (["order.status"], "backfill 'order.status' is not TABLE.COLUMN=SQL"),
        (["order.status=  "], "is not TABLE.COLUMN=SQL"),
        (["status='placed'"], "backfill \"status='placed'\" is not TABLE.COLUMN=SQL"),
        # pyproject: a key without the table, a value that is not SQL text
        ({"status": "'placed'"}, "backfill 'status': expected 'TABLE.COLUMN' = 'SQL expression'"),
        ({"order.status": 1}, "backfill 'order.status': expected 'TABLE.COLUMN' ="),
    ],
)
def test_malformed_backfill(raw: object, complaint: str) -> None:
    message = error_of({"backfill": raw})
    assert message.startswith(f"{SOURCE}: setting 'backfill': ")
    assert complaint in message


# --- merging --------------------------------------------------------------------------------


def test_renames_and_backfills_add_up_across_sources() -> None:
    settings = (
        Settings()
        .merged({"renames": ["customer.name:full_name"],
                 "backfill": {"order.status": "'placed'", "order.total": "0"}}, SOURCE)
        .merged({"renames": ["client:account"]}, "migrafix.hook()")
        .merged({"rename": ["order.qty:quantity"],
                 "backfill": ["order.total=1"]}, "alembic -x")
    )
    assert settings.column_renames == (
        ColumnRename("customer", "name", "full_name"),
        ColumnRename("order", "qty", "quantity"),
    )
    assert settings.table_renames == (TableRename("client", "account"),)
    # A backfill given again for the same column: the later source's SQL.
    assert settings.backfill == {"order.status": "'placed'", "order.total": "1"}


def test_other_settings_are_replaced_by_a_later_source() -> None:
    settings = (
        Settings()
        .merged({"ignore": ["unnamed-constraint"], "select": ["not-null-add"],
                 "interactive": True}, SOURCE)
        .merged({"ignore": [], "interactive": "false"}, "migrafix.hook()")
    )
    assert settings.ignore == ()
    assert settings.select == ("not-null-add",)  # untouched by the later source
    assert settings.interactive is False


def test_merged_leaves_the_original_unchanged() -> None:
    base = Settings().merged({"renames": ["customer.name:full_name"]}, SOURCE)
    base.merged({"renames": ["order.qty:quantity"]}, "alembic -x")
    assert base.column_renames == (ColumnRename("customer", "name", "full_name"),)


# --- -x -------------------------------------------------------------------------------------


def test_x_arguments_of_others_are_ignored() -> None:
    """env.py may take its own -x arguments; migrafix takes only its own."""
    raw = x_arguments_to_raw(["tenant=acme", "sqlalchemy.url=sqlite://", "dry",
                              "rename=customer.name:full_name", "backfill=order.total=0",
                              "rename=client:account", "concurrent_indexes=always"])
    assert raw == {
        "rename": ["customer.name:full_name", "client:account"],
        "backfill": ["order.total=0"],
        "concurrent_indexes": "always",
    }


def test_x_migrafix_prefix_reaches_every_setting() -> None:
    raw = x_arguments_to_raw(["migrafix.ignore=unnamed-constraint", "migrafix.interactive=yes"])
    settings = Settings().merged(raw, "alembic -x")
    assert settings.ignore == ("unnamed-constraint",)
    assert settings.interactive is True


def test_x_misspelled_migrafix_setting_is_an_error() -> None:
    raw = x_arguments_to_raw(["migrafix.typo=1"])
    with pytest.raises(SettingsError, match=r"^alembic -x: unknown migrafix setting 'typo'"):
        Settings().merged(raw, "alembic -x")


@pytest.mark.parametrize("argument", ["rename", "migrafix.interactive"])
def test_x_migrafix_argument_without_value_is_an_error(argument: str) -> None:
    key = argument.removeprefix("migrafix.")
    with pytest.raises(SettingsError, match=rf"^-x {argument}: expected {key}=VALUE$"):
        x_arguments_to_raw([argument])


# --- rule_enabled / find_pyproject ----------------------------------------------------------


def test_rule_enabled_by_select_and_ignore() -> None:
    everything = Settings()
    assert everything.rule_enabled("not-null-add")
    selected = Settings(select=("not-null-add", "unnamed-constraint"))
    assert selected.rule_enabled("not-null-add")
    assert not selected.rule_enabled("drop-add-rename")
    ignored = Settings(ignore=("not-null-add",))
    assert not ignored.rule_enabled("not-null-add")
    assert ignored.rule_enabled("unnamed-constraint")
    both = Settings(select=("not-null-add", "unnamed-constraint"), ignore=("not-null-add",))
    assert not both.rule_enabled("not-null-add")  # ignore wins over select
    assert both.rule_enabled("unnamed-constraint")


def test_find_pyproject_nearest_at_or_above(tmp_path: Path) -> None:
    deep = tmp_path / "repo" / "services" / "db"
    deep.mkdir(parents=True)
    outside = find_pyproject(deep)  # none in tmp_path yet: the search goes past it
    assert outside is None or tmp_path not in outside.parents
    (tmp_path / "repo" / "pyproject.toml").write_text("")
    assert find_pyproject(deep) == tmp_path / "repo" / "pyproject.toml"
    (deep / "pyproject.toml").write_text("")
    assert find_pyproject(deep) == deep / "pyproject.toml"
    (tmp_path / "repo" / "services" / "pyproject.toml").mkdir()  # a directory: not a file
    assert find_pyproject(deep.parent) == tmp_path / "repo" / "pyproject.toml"


def test_hook_rejects_unknown_setting_when_called() -> None:
    """A typo in env.py fails when env.py runs, not when a later revision happens to need it."""
    with pytest.raises(migrafix.SettingsError) as info:
        migrafix.hook(selekt=1)
    assert str(info.value).startswith("migrafix.hook(): unknown migrafix setting 'selekt'")


# --- through alembic ------------------------------------------------------------------------

HEADER = "import sqlalchemy as sa\n\nmetadata = sa.MetaData()\n"
CUSTOMER_V1 = HEADER + """
customer = sa.Table(
    "customer", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100)),
)
"""
CUSTOMER_V2 = HEADER + """
customer = sa.Table(
    "customer", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("full_name", sa.String(100)),
)
"""
RENAMED = [
    "op.alter_column('customer', 'name',",
    "existing_type=sa.VARCHAR(length=100),",
    "new_column_name='full_name',",
    "existing_nullable=True)",
]
RENAMES = '[tool.migrafix]\nrenames = ["customer.name:full_name"]\n'


def renamed_customer(project: AlembicProject) -> list[str]:
    """v1, upgrade, then autogenerate the drop + add of name / full_name; its upgrade body."""
    project.write_models(CUSTOMER_V1)
    project.revision("v1")
    project.alembic("upgrade", "head")
    project.write_models(CUSTOMER_V2)
    [path] = project.revision("v2")
    return body_lines(path.read_text())


def test_pyproject_in_project_dir_is_read(tmp_path: Path, sqlite_url: str) -> None:
    project = AlembicProject(tmp_path / "app", sqlite_url)
    (project.root / "pyproject.toml").write_text(RENAMES)
    assert renamed_customer(project) == RENAMED


def test_pyproject_in_parent_dir_is_read(tmp_path: Path, sqlite_url: str) -> None:
    (tmp_path / "pyproject.toml").write_text(RENAMES)
    project = AlembicProject(tmp_path / "services" / "db", sqlite_url)
    assert renamed_customer(project) == RENAMED


def test_nearest_pyproject_wins(tmp_path: Path, sqlite_url: str) -> None:
    """A pyproject.toml next to alembic.ini hides the one above it, even without renames."""
    (tmp_path / "pyproject.toml").write_text(RENAMES)
    project = AlembicProject(tmp_path / "app", sqlite_url)
    (project.root / "pyproject.toml").write_text("[tool.migrafix]\ninteractive = false\n")
    upgrade = renamed_customer(project)
    assert upgrade[-1] == "op.drop_column('customer', 'name')"
    assert "new_column_name='full_name'," not in upgrade


def known_settings() -> str:
    """The "(known: ...)" every unknown-setting message ends with (the list grows)."""
    with pytest.raises(SettingsError) as info:
        Settings().merged({"?": 1}, "")
    return str(info.value).partition(" '?' ")[2]


KNOWN = known_settings()


def assert_alembic_failed(result: subprocess.CompletedProcess[str], message: str) -> None:
    """The way Alembic fails on its own errors (`alembic upgrade nowhere`): `FAILED: ...` on
    stdout, exit 255, and on stderr only its log lines, the last the same message logged as
    an ERROR: no traceback."""
    assert (result.returncode, result.stdout) == (255, f"FAILED: {message}\n")
    lines = result.stderr.splitlines()
    assert lines[-1] == f"ERROR [alembic.util.messaging] {message}", result.stderr
    assert all(re.match(r"(INFO|WARNI|ERROR) +\[alembic\.", line) for line in lines), \
        result.stderr


def test_misspelled_pyproject_key_fails_the_revision(tmp_path: Path, sqlite_url: str) -> None:
    project = AlembicProject(tmp_path, sqlite_url)
    pyproject = project.root / "pyproject.toml"
    pyproject.write_text('[tool.migrafix]\nselekt = ["not-null-add"]\n')
    project.write_models(CUSTOMER_V1)
    result = project.alembic("revision", "--autogenerate", "-m", "v1", check=False)
    assert_alembic_failed(
        result, f"{pyproject} [tool.migrafix]: unknown migrafix setting 'selekt' {KNOWN}")
    assert list(project.versions.glob("*.py")) == []


def test_x_misspelled_setting_fails_the_revision(tmp_path: Path, sqlite_url: str) -> None:
    project = AlembicProject(tmp_path, sqlite_url)
    project.write_models(CUSTOMER_V1)
    result = project.alembic("-x", "migrafix.ignor=concurrent-index", "revision",
                             "--autogenerate", "-m", "v1", check=False)
    assert_alembic_failed(result, f"alembic -x: unknown migrafix setting 'ignor' {KNOWN}")
    assert list(project.versions.glob("*.py")) == []


def test_invalid_toml_names_the_pyproject(tmp_path: Path, sqlite_url: str) -> None:
    """Which of the project's pyproject.toml files is broken must be said: migrafix may read
    one in a parent directory the user did not think of."""
    (tmp_path / "pyproject.toml").write_text("[tool.migrafix]\nignore = [not-null-add]\n")
    project = AlembicProject(tmp_path / "app", sqlite_url)
    project.write_models(CUSTOMER_V1)
    result = project.alembic("revision", "--autogenerate", "-m", "v1", check=False)
    assert_alembic_failed(result, f"{tmp_path / 'pyproject.toml'}: not valid TOML: Invalid "
                                  "value (at line 2, column 11)")


def test_ignore_in_pyproject_leaves_not_null_add_alone(tmp_path: Path, sqlite_url: str) -> None:
    project = AlembicProject(tmp_path, sqlite_url)
    (project.root / "pyproject.toml").write_text('[tool.migrafix]\nignore = ["not-null-add"]\n')
    project.write_models(CUSTOMER_V1)
    project.revision("v1")
    project.alembic("upgrade", "head")
    project.write_models(CUSTOMER_V1.replace(
        'sa.String(100)),', 'sa.String(100)),\n    sa.Column("age", sa.Integer, nullable=False),'))
    [path] = project.revision("v2")
    assert body_lines(path.read_text()) == [
        "op.add_column('customer', sa.Column('age', sa.Integer(), nullable=False))",
    ]


ACCOUNT = HEADER + """
account = sa.Table(
    "account", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(200)),
    sa.UniqueConstraint("email"),
)
"""


@pytest.mark.parametrize(
    ("hook", "x", "named"),
    [
        ("migrafix.process_revision_directives", [], False),  # pyproject: ignored
        ("migrafix.hook(ignore=[])", [], True),  # hook() overrides pyproject
        ("migrafix.hook(ignore=[])", ["migrafix.ignore=unnamed-constraint"], False),  # -x wins
    ],
    ids=["pyproject", "hook-over-pyproject", "x-over-hook"],
)
def test_precedence_pyproject_hook_x(
    tmp_path: Path, sqlite_url: str, hook: str, x: list[str], named: bool
) -> None:
    project = AlembicProject(tmp_path, sqlite_url, hook=hook)
    pyproject = '[tool.migrafix]\nignore = ["unnamed-constraint"]\n'
    (project.root / "pyproject.toml").write_text(pyproject)
    project.write_models(ACCOUNT)
    [path] = project.revision("v1", x=x)
    unique = next(line for line in body_lines(path.read_text()) if "UniqueConstraint" in line)
    if named:
        assert unique == "sa.UniqueConstraint('email', name=op.f('uq_account_email'))"
    else:
        assert unique == "sa.UniqueConstraint('email')"


def test_hook_typo_in_env_py_fails_the_revision(tmp_path: Path, sqlite_url: str) -> None:
    project = AlembicProject(tmp_path, sqlite_url, hook="migrafix.hook(selekt=1)")
    project.write_models(CUSTOMER_V1)
    result = project.alembic("revision", "--autogenerate", "-m", "v1", check=False)
    assert_alembic_failed(result, f"migrafix.hook(): unknown migrafix setting 'selekt' {KNOWN}")
    assert list(project.versions.glob("*.py")) == []
