"""Every actor proven, records tamper-evident: who the command line acts for comes from the
operating-system account (never a typed name); history is a hash chain that `ehcp audit verify`
checks, with seals kept elsewhere; on PostgreSQL the service's login can only read and write rows."""

from __future__ import annotations

import getpass
import hashlib
import json
import pwd
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from conftest import CW, ROOT, STAFF, TM, documents_app
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner
from walking import Cli, open_case, walk_config

from engine.actor import Actor
from engine.app import App
from engine.audit import read_seal, verify, write_seal
from engine.cli import app as cli_app
from engine.clock import FixedClock, SystemClock
from engine.config import Settings, StaffMember, load_settings
from engine.directory import Directory
from engine.documents import read_stored
from engine.errors import ConfigError, DamagedFile, InvalidInput, NotAuthorised
from engine.identity import command_line_actor, os_account
from engine.store import database, queries
from engine.store.chain import FIELDS, GENESIS, entry_hash
from engine.store.repository import ContactRecord, Recipient

# -- who is acting -----------------------------------------------------------------------------


ADMIN = StaffMember(id="adm", name="An Administrator", email="adm@example.org", role="administrator")


def _settings(**kw: object) -> Settings:
    return Settings(staff=[*STAFF, ADMIN], **kw)  # type: ignore[arg-type]


def test_the_command_line_acts_for_the_account_running_it_never_a_typed_name() -> None:
    me = getpass.getuser()
    settings = _settings(accounts={me: "cw", "someone.else": "tm"})
    directory = Directory(list(settings.staff))
    assert command_line_actor(settings, directory, environ={}) == CW
    # Naming a manager does not make a caseworker one; nor does the old variable.
    with pytest.raises(NotAuthorised, match="--by is for an administrator .* you are cw \\(caseworker\\)"):
        command_line_actor(settings, directory, by="tm", environ={})
    with pytest.raises(NotAuthorised, match="EHCP_USER does not choose who acts"):
        command_line_actor(settings, directory, environ={"EHCP_USER": "tm"})
    # An account nobody mapped is refused by name; "*" maps every other account (a demo).
    unmapped = _settings(accounts={"someone.else": "tm"})
    with pytest.raises(NotAuthorised, match=f"account '{me}' is not mapped to a member of staff"):
        command_line_actor(unmapped, directory, environ={})
    assert command_line_actor(_settings(accounts={"*": "tm"}), directory, environ={}) == TM


def test_an_administrator_records_on_someones_behalf_with_their_role_and_history_keeps_both() -> None:
    me = getpass.getuser()
    settings = _settings(accounts={me: "adm"})
    directory = Directory(list(settings.staff))
    assert command_line_actor(settings, directory, by="tm", environ={}) == Actor("tm", "team_manager", "adm")
    with pytest.raises(NotAuthorised, match="--by: 'nobody' is not a member of staff"):
        command_line_actor(settings, directory, by="nobody", environ={})


def test_sudo_names_the_account_only_when_the_command_runs_as_root_or_the_service_account() -> None:
    nobody = pwd.getpwnam("nobody").pw_uid
    sudo = {"SUDO_USER": "alex"}
    assert os_account(_settings(), sudo, uid=0) == "alex"
    # Anyone can set SUDO_USER in their own environment: an ordinary account's is not believed ...
    assert os_account(_settings(), sudo, uid=nobody) == "nobody"
    # ... unless that account is the service's own, which staff reach only through sudo.
    assert os_account(_settings(service_account="nobody"), sudo, uid=nobody) == "alex"


def test_the_old_user_setting_and_accounts_naming_strangers_are_refused_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("user: cw\n")
    with pytest.raises(ConfigError, match="user: no longer says who the command line acts for"):
        load_settings(config)
    config.write_text("staff: []\naccounts: {alex: nobody.here}\n")
    with pytest.raises(ConfigError, match="accounts: alex: 'nobody.here' is not a member of staff"):
        load_settings(config)


def test_an_auditor_or_administrator_changes_nothing(tmp_path: Path) -> None:
    cli = Cli(walk_config(tmp_path))
    case = open_case(cli, "2025-01-06", "request_received_on=2025-01-06", "requested_by=parent")
    auditor, admin = cli.acting_as("sam.demo"), cli.acting_as("alex.demo")
    assert "you are auditor" in auditor.fire(case, "agree_to_assess", "2025-01-07", ok=False)
    assert "you are administrator" in admin.fire(case, "agree_to_assess", "2025-01-07", ok=False)
    err = auditor("case", "open", "--name", "Generated Child", "--dob", "2015-02-03", "--caseworker", "casey.demo",
                  ok=False)  # fmt: skip
    assert "an auditor may not open a case" in err
    assert auditor.show(case)["state"] == "request_received"  # reading is allowed


# -- the hash chain ----------------------------------------------------------------------------


def _busy_case(app: App, clock: FixedClock) -> int:
    """A case with steps, an exception, a correction and a breach recorded by the sweep."""
    parent = ContactRecord("parent", "Generated Parent", "parent@example.org")
    case_id = app.cases.open_case(
        name="Generated Child",
        date_of_birth=date(2015, 2, 3),
        workflow="needs_assessment",
        actor=CW,
        inputs={"request_received_on": "2025-01-06", "requested_by": "parent"},
        contacts=[parent],
        caseworker="cw",
    ).case_id
    clock.set(date(2025, 2, 10))
    app.cases.fire(case_id, "agree_to_assess", actor=CW)
    app.cases.record_exception(case_id, "final_plan", "personal_circumstances", "In hospital for 5 weeks", actor=CW)
    clock.set(date(2025, 6, 30))
    app.sweeper.sweep()  # the advice and draft limits have passed: breaches recorded by the scheduler
    return case_id


def _history(engine: object) -> list[dict[str, object]]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return [dict(r) for r in conn.execute(text("SELECT * FROM history ORDER BY id")).mappings()]


def _tamper(engine: object, sql: str, **params: object) -> None:
    """Change history as someone with the database's own rights would: around its guards."""
    with engine.begin() as conn:  # type: ignore[attr-defined]
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execute(text("ALTER TABLE history DISABLE TRIGGER history_append_only"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS history_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS history_no_delete"))
        conn.execute(text(sql), params)
        if postgres:
            conn.execute(text("ALTER TABLE history ENABLE TRIGGER history_append_only"))


def test_every_entry_is_chained_and_verify_finds_a_changed_or_removed_entry(database_url: str, tmp_path: Path) -> None:
    clock = FixedClock(date(2025, 1, 6))
    app = documents_app(tmp_path, clock) if database_url.startswith("sqlite") else None
    if app is None:
        app = App(Settings(database_url=database_url, workflows_dir=str(ROOT / "workflows"), staff=STAFF), clock,
                  create=True)  # fmt: skip
    case_id = _busy_case(app, clock)
    rows = _history(app.engine)
    assert {r["trigger"] for r in rows} >= {"start", "agree_to_assess", "record_exception", "deadline_breached"}
    assert all(len(str(r["hash"])) == 64 for r in rows) and len({r["hash"] for r in rows}) == len(rows)
    clean = verify(app.engine)
    assert clean.intact and clean.entries == len(rows), clean.breaks
    seal = tmp_path / "seal.json"
    assert write_seal(app.engine, seal, clock.now()) == clean.instances

    # Someone rewrites who agreed to assess: that entry is named, with its case.
    agreed = next(r for r in rows if r["trigger"] == "agree_to_assess")
    _tamper(app.engine, "UPDATE history SET actor = 'tm' WHERE id = :id", id=agreed["id"])
    found = verify(app.engine)
    assert found.breaks == [
        f"case {case_id}, needs_assessment (instance {agreed['instance_id']}), entry {agreed['seq']}: does not "
        "match what it says, or an entry before it was changed, removed or added"
    ]
    # Put back, then the last entry removed: the instance's own hash no longer matches its last entry.
    _tamper(app.engine, "UPDATE history SET actor = 'cw' WHERE id = :id", id=agreed["id"])
    assert verify(app.engine).intact
    # The case moved on by hand, with no entry: the state is not in the hash, so it is checked beside it.
    iid = agreed["instance_id"]
    with app.engine.connect() as conn:
        state, version = conn.execute(
            text("SELECT state, version FROM workflow_instance WHERE id = :i"), {"i": iid}
        ).one()
    _tamper(app.engine, "UPDATE workflow_instance SET state = 'plan_finalised' WHERE id = :i", i=iid)
    assert verify(app.engine).breaks == [
        f"case {case_id}, needs_assessment (instance {iid}): changed outside the service (it is at "
        f"'plan_finalised', step {version}; its last entry, {version}, left it at '{state}')"
    ]
    _tamper(app.engine, "UPDATE workflow_instance SET state = :s WHERE id = :i", s=state, i=iid)
    assert verify(app.engine).intact
    last = rows[-1]
    _tamper(app.engine, "DELETE FROM history WHERE id = :id", id=last["id"])
    assert verify(app.engine).breaks == [
        f"case {case_id}, needs_assessment (instance {last['instance_id']}): its latest entries were removed or "
        "added outside the service (the instance's own hash does not match its last entry)"
    ]
    app.engine.dispose()


def test_a_chain_recomputed_after_a_change_is_still_caught_by_an_earlier_seal(tmp_path: Path) -> None:
    clock = FixedClock(date(2025, 1, 6))
    app = documents_app(tmp_path, clock)
    case_id = _busy_case(app, clock)
    seal = tmp_path / "seal.json"
    write_seal(app.engine, seal, clock.now())
    # A careful forger changes an entry and recomputes every hash after it, and the instance's.
    rows = _history(app.engine)
    first = rows[0]
    _tamper(app.engine, "UPDATE history SET note = 'changed' WHERE id = :id", id=first["id"])
    previous = GENESIS
    for row in _history(app.engine):
        if row["instance_id"] != first["instance_id"]:
            continue
        previous = entry_hash(previous, **{k: row[k] for k in FIELDS})  # type: ignore[arg-type]
        _tamper(app.engine, "UPDATE history SET hash = :h WHERE id = :id", h=previous, id=row["id"])
    with app.engine.begin() as conn:
        conn.execute(text("UPDATE workflow_instance SET history_hash = :h WHERE id = :id"),
                     {"h": previous, "id": first["instance_id"]})  # fmt: skip
    assert verify(app.engine).intact  # the chain alone cannot tell
    sealed = verify(app.engine, read_seal(seal))
    assert len(sealed.breaks) == 1 and sealed.breaks[0].startswith(f"case {case_id}, needs_assessment")
    assert "changed since the seal" in sealed.breaks[0]


def test_ehcp_audit_verify_and_seal_on_the_command_line(tmp_path: Path) -> None:
    cli = Cli(walk_config(tmp_path))
    case = open_case(cli, "2025-01-06", "request_received_on=2025-01-06", "requested_by=parent")
    cli.fire(case, "agree_to_assess", "2025-02-10")
    assert cli("audit", "verify").startswith("intact: 2 history entries of 1 workflow instances")
    assert "sealed 1 workflow instances" in cli("audit", "seal", "--out", str(tmp_path / "seal.json"))
    assert "exists" in cli("audit", "seal", "--out", str(tmp_path / "seal.json"), ok=False)
    engine = create_engine(load_settings(cli.config).database())
    _tamper(engine, "UPDATE history SET occurred_on = '2025-02-03' WHERE seq = 2")
    engine.dispose()
    result = CliRunner().invoke(
        cli_app, ["--config", str(cli.config), "audit", "verify", "--seal", str(tmp_path / "seal.json")]
    )
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "BROKEN: 1 break(s) in 2 history entries of 1 workflow instances, and 1 entries named in the seal:"
    )
    assert "Generated Child" not in result.stdout
    (tmp_path / "not-a-seal.json").write_text("{}")
    assert "not a seal written by 'ehcp audit seal'" in cli(
        "audit", "verify", "--seal", str(tmp_path / "not-a-seal.json"), ok=False
    )


def test_a_database_from_before_the_chain_is_chained_by_its_upgrade(tmp_path: Path) -> None:
    clock = FixedClock(date(2025, 1, 6))
    app = documents_app(tmp_path, clock)
    _busy_case(app, clock)
    count = len(_history(app.engine))
    url = app.settings.database()
    app.engine.dispose()
    engine, _ = database.reach(url)
    database.downgrade(engine, "0009", allow_data_loss=True)
    database.migrate(engine)
    done = verify(engine)
    assert done.intact and done.entries == count, done.breaks
    with engine.connect() as conn:  # the guards are back: history still refuses changes
        with pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text("UPDATE history SET actor = 'x'"))
    engine.dispose()


# -- PostgreSQL: the service's login reads and writes rows only ------------------------------------


@pytest.mark.postgres
def test_on_postgresql_the_service_login_cannot_change_history_or_disable_its_guards(
    postgres_server: str, tmp_path: Path
) -> None:
    import uuid

    name = f"t_{uuid.uuid4().hex[:12]}"
    owner, service = f"own_{name}", f"svc_{name}"
    admin = create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {owner} LOGIN"))
        conn.execute(text(f"CREATE ROLE {service} LOGIN"))
        conn.execute(text(f"CREATE DATABASE {name} OWNER {owner}"))
    admin.dispose()
    server = postgres_server.replace("postgres@", "{}@")
    config = walk_config(tmp_path, templates_dir=str(ROOT / "templates"))
    data = yaml.safe_load(config.read_text())
    data["database_url"] = server.format(service) + f"/{name}"
    data["database_owner_url"] = server.format(owner) + f"/{name}"
    config.write_text(yaml.safe_dump(data))
    runner = CliRunner()
    made = runner.invoke(cli_app, ["--config", str(config), "db", "init"])
    assert made.exit_code == 0 and f"the service's login {service} may read and write rows only" in made.stdout
    cli = Cli(config)
    case = open_case(cli, "2025-01-06", "request_received_on=2025-01-06", "requested_by=parent")
    cli.fire(case, "agree_to_assess", "2025-02-10")
    cli("case", "exception", str(case), "final_plan", "--head", "personal_circumstances", "--reason", "In hospital")
    cli("tick", "--as-of", "2025-06-30", "--no-send")
    assert cli("audit", "verify").startswith("intact")
    as_service = create_engine(data["database_url"])
    for statement in (
        "UPDATE history SET actor = 'someone else'",
        "DELETE FROM history",
        "ALTER TABLE history DISABLE TRIGGER history_append_only",
        "DELETE FROM plan_edit",
        "UPDATE installation SET secret = 'x'",
        "DROP TABLE outbox",
    ):
        with as_service.connect() as conn, pytest.raises(DBAPIError, match="permission denied|must be owner"):
            conn.execute(text(statement))
    as_service.dispose()
    doctor = runner.invoke(cli_app, ["--config", str(config), "doctor"])
    assert "owns the tables" not in doctor.stdout and "superuser" not in doctor.stdout
    # A service login that may act as the owner could still disable the guards: reported too.
    admin = create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"GRANT {owner} TO {service}"))
    admin.dispose()
    doctor = runner.invoke(cli_app, ["--config", str(config), "doctor"])
    assert f"the service's login {service} may act as {owner}, who owns the tables" in doctor.stdout
    # The same service run as the owner's login is reported.
    data["database_url"] = data["database_owner_url"]
    config.write_text(yaml.safe_dump(data))
    doctor = runner.invoke(cli_app, ["--config", str(config), "doctor"])
    assert doctor.exit_code == 1 and f"the service's login {owner} owns the tables" in doctor.stdout


# -- the smaller findings ------------------------------------------------------------------------


def test_a_recipient_digest_is_keyed_so_a_guessed_address_cannot_be_matched(tmp_path: Path) -> None:
    clock = FixedClock(date(2025, 1, 6))
    app = documents_app(tmp_path, clock)
    _busy_case(app, clock)
    plain = hashlib.sha256(b"parent@example.org").hexdigest()[:16]
    with app.engine.connect() as conn:
        keys = [r[0] for r in conn.execute(text("SELECT key FROM outbox"))]
        secret = conn.execute(text("SELECT secret FROM installation")).scalar_one()
    assert keys and not any(plain in k for k in keys)
    parent = Recipient("parent", "Generated Parent", "parent@example.org")
    assert any(parent.token(bytes.fromhex(secret)) in k for k in keys)
    assert parent.token(b"another installation") != parent.token(bytes.fromhex(secret))


def test_a_stored_document_changed_on_disk_is_refused_when_read_and_made_again(tmp_path: Path) -> None:
    clock = FixedClock(date(2025, 1, 6))
    app = documents_app(tmp_path, clock)
    case_id = _busy_case(app, clock)
    record, _ = app.documents.render(case_id, "advice-request", actor=CW, adviser="educational")
    assert read_stored(record.path, record.sha256)[:5] == b"%PDF-"
    Path(record.path).write_bytes(b"%PDF-1.7 something else entirely")
    with pytest.raises(DamagedFile, match="has been changed or damaged since it was made"):
        read_stored(record.path, record.sha256)
    again, _ = app.documents.render(case_id, "advice-request", actor=CW, adviser="educational")
    assert again.sha256 == record.sha256 and read_stored(again.path, again.sha256)[:5] == b"%PDF-"


def test_tick_output_names_no_child_and_no_address_and_secrets_in_the_file_are_warned_about(tmp_path: Path) -> None:
    cli = Cli(walk_config(tmp_path, templates_dir=str(ROOT / "templates")))
    case = open_case(cli, "2025-01-06", "request_received_on=2025-01-06", "requested_by=parent")
    cli.fire(case, "agree_to_assess", "2025-02-10")
    out = cli("tick", "--as-of", "2025-06-30")
    assert "Generated" not in out and "@" not in out and f"for case {case}" in out
    shown = json.loads(cli("tick", "--as-of", "2025-07-30", "--json"))
    assert "Generated" not in json.dumps(shown) and "@example.org" not in json.dumps(shown)
    data = yaml.safe_load(cli.config.read_text())
    data["notifications"]["smtp"]["password"] = "s3cret"
    cli.config.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(cli_app, ["--config", str(cli.config), "case", "list"])
    assert result.exit_code == 0
    assert "warning: the configuration file holds notifications.smtp.password" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout


# -- found by attacking the change -------------------------------------------------------------------


def test_a_configuration_someone_else_could_write_is_not_believed(tmp_path: Path) -> None:
    cli = Cli(walk_config(tmp_path))
    cli.config.chmod(0o664)  # the group could map itself to a manager
    assert "must belong to the account running the command" in cli("case", "list", ok=False)
    cli.config.chmod(0o644)
    nobody = pwd.getpwnam("nobody")
    import os

    os.chown(cli.config, nobody.pw_uid, nobody.pw_gid)  # a file of another account's, named with --config
    assert "must belong to the account running the command" in cli("case", "list", ok=False)


def test_work_on_the_whole_installation_is_for_its_own_account_or_an_administrator(tmp_path: Path) -> None:
    from engine.identity import operator

    nobody = pwd.getpwnam("nobody").pw_uid
    config = walk_config(tmp_path)  # owned by root, as is the database
    data = yaml.safe_load(config.read_text())
    data["accounts"] = {"nobody": "casey.demo"}
    config.write_text(yaml.safe_dump(data))
    settings = load_settings(config)
    directory = Directory(list(settings.staff))
    assert operator(settings, directory, "the sweep", environ={}, uid=0) == "root"
    with pytest.raises(NotAuthorised, match="the sweep is for the service's own account or an administrator; you are "
                       "casey.demo \\(caseworker\\)"):  # fmt: skip
        operator(settings, directory, "the sweep", environ={}, uid=nobody)
    data["accounts"] = {"nobody": "alex.demo"}
    config.write_text(yaml.safe_dump(data))
    assert operator(load_settings(config), directory, "a backup", environ={}, uid=nobody) == "alex.demo"
    # Through sudo, the person sudo names answers for it, not the service's account.
    data["accounts"] = {"casey": "casey.demo"}
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(NotAuthorised, match="you are casey.demo"):
        operator(load_settings(config), directory, "a restore", environ={"SUDO_USER": "casey"}, uid=0)
    # The sweep never runs ahead of today: it would record breaches that have not happened.
    err = Cli(config)("tick", "--as-of", (SystemClock().today() + timedelta(days=30)).isoformat(), ok=False)
    assert "the sweep never runs ahead of today" in err


def test_out_never_names_the_services_own_files(tmp_path: Path) -> None:
    cli = Cli(walk_config(tmp_path))
    database = load_settings(cli.config).database().removeprefix("sqlite:///")
    for command in (("audit", "seal"), ("backup",)):
        err = cli(*command, "--out", database, "--force", ok=False)
        assert "is one of the service's own files or folders" in err
    assert Path(database).read_bytes()[:15] == b"SQLite format 3"


def test_a_backup_altered_to_drop_its_guards_is_not_restored_and_doctor_notices_missing_ones(tmp_path: Path) -> None:
    import sqlite3

    cli = Cli(walk_config(tmp_path))
    open_case(cli, "2025-01-06", "request_received_on=2025-01-06", "requested_by=parent")
    backup = tmp_path / "cases.bak"
    cli("backup", "--out", str(backup))
    with sqlite3.connect(backup) as altered:
        altered.execute("DROP TRIGGER history_no_update")
    err = cli("restore", str(backup), "--yes", ok=False)
    assert "lacks the guards that keep the record append-only (history_no_update)" in err
    database = load_settings(cli.config).database().removeprefix("sqlite:///")
    with sqlite3.connect(database) as live:
        live.execute("DROP TRIGGER plan_edit_no_delete")
    result = CliRunner().invoke(cli_app, ["--config", str(cli.config), "doctor"])
    assert "append-only are missing or disabled: plan_edit_no_delete" in result.stdout


def test_a_seal_covers_plans_sent_or_issued(tmp_path: Path) -> None:
    clock = FixedClock(date(2025, 1, 6))
    app = documents_app(tmp_path, clock)
    case_id = _busy_case(app, clock)
    app.plans.record_issued(case_id, {"A": "Views", "F": "Speech therapy weekly"}, date(2024, 12, 1), actor=CW)
    seal = tmp_path / "seal.json"
    write_seal(app.engine, seal, clock.now())
    assert verify(app.engine, read_seal(seal)).intact
    with app.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER plan_issued_no_update"))
        conn.execute(text("UPDATE plan_version SET sections = '{}' WHERE case_id = :c"), {"c": case_id})
    breaks = verify(app.engine, read_seal(seal)).breaks
    assert breaks == [f"case {case_id}, plan version 1: its text has changed since the seal"]


def test_a_caseworker_does_not_undo_a_managers_decision(tmp_path: Path) -> None:
    clock = FixedClock(date(2025, 1, 6))
    app = documents_app(tmp_path, clock)
    case_id = _busy_case(app, clock)
    clock.set(date(2025, 7, 1))
    app.cases.fire(case_id, "decide_not_to_issue", actor=TM, inputs={"reasons": "Needs met by the school"})
    with pytest.raises(NotAuthorised, match="tm \\(team manager\\) took it; ask your team manager"):
        app.corrections.correct(case_id, reason="Wrong", actor=CW)
    assert app.corrections.correct(case_id, reason="Panel had not met", actor=TM).seq


def test_a_manager_reassigns_a_case_on_the_record_and_a_correction_passes_over_it(tmp_path: Path) -> None:
    clock = FixedClock(date(2025, 1, 6))
    app = documents_app(tmp_path, clock)
    case_id = _busy_case(app, clock)
    with pytest.raises(NotAuthorised, match="only a team manager or head of service may reassign"):
        app.cases.reassign(case_id, "cw2", "On leave", actor=CW)
    with pytest.raises(InvalidInput, match="'tm' is not a caseworker"):
        app.cases.reassign(case_id, "tm", "On leave", actor=TM)
    assert app.cases.reassign(case_id, "cw2", "Casey is on leave", actor=TM) == "cw"
    view = queries.case_view(app.engine, case_id)
    assert view["caseworker"] == "cw2"
    moved = [h for h in view["history"] if h["trigger"] == "reassign"]
    assert [(h["by"], h["inputs"], h["note"]) for h in moved] == [
        ("tm", {"from": "cw", "to": "cw2"}, "Casey is on leave")
    ]
    assert verify(app.engine).intact
    # The last step that a correction reverses is the last workflow step, not the reassignment.
    corrected = app.corrections.correct(case_id, reason="Exception recorded in error", actor=TM)
    assert [step for r in corrected.reversals for _, step, _ in r.reversed] == ["record_exception"]
