"""No lost update: `tenant show > f`, a colleague's change, then `tenant update -f f` is refused.

The document `show` writes names the version it was read at (its first line); `update -f` is
conditional on that version, or on `--if-match VERSION`. A file that names no version (hand
written, from a tenants repository, a runbook) still updates, with a warning naming the
version it replaced.
"""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest
import yaml
from mypy_boto3_s3 import S3Client

from redmica_ops.cli.app import Application
from redmica_ops.errors import UsageError
from tests.conftest import BUCKET, CANARY_PASSWORD, Invoke, objects_in, tenant_yaml


def _stored(s3: S3Client, tenant_id: str = "bravo", bucket: str = BUCKET) -> dict[str, object]:
    body = s3.get_object(Bucket=bucket, Key=f"tenants/{tenant_id}.yaml")["Body"].read()
    data: dict[str, object] = yaml.safe_load(body)
    return data


def _port(s3: S3Client, tenant_id: str = "bravo", bucket: str = BUCKET) -> object:
    return _stored(s3, tenant_id, bucket)["db"]["port"]  # type: ignore[index]


def _version(s3: S3Client, tenant_id: str = "bravo") -> str:
    return s3.head_object(Bucket=BUCKET, Key=f"tenants/{tenant_id}.yaml")["VersionId"]


def _bravo(run: Invoke, **args: str) -> None:
    flags = [f"--{k}={v}" for k, v in args.items()]
    document = tenant_yaml("bravo", db__port=5432)
    added = run(*flags, "tenant", "add", "bravo", "-f", "-", input=document)
    assert added.exit_code == 0, added.output


def _colleague_sets_port_7000(run: Invoke, *flags: str) -> None:
    """A colleague's change, made the safe way (a fresh show, then update)."""
    shown = run(*flags, "tenant", "show", "bravo").stdout
    theirs = re.sub(r"port: \d+", "port: 7000", shown)
    assert theirs != shown
    changed = run(*flags, "tenant", "update", "bravo", "-f", "-", input=theirs)
    assert changed.exit_code == 0, changed.output
    assert "db.port: " in changed.stderr  # a change, not "no changes"
    assert "warning" not in changed.stderr  # it named its version: nothing to warn about


def _mine(run: Invoke, tmp_path: Path, *flags: str) -> Path:
    mine = tmp_path / "f"
    mine.write_text(run(*flags, "tenant", "show", "bravo").stdout)
    return mine


def _edit(mine: Path) -> None:
    mine.write_text(mine.read_text().replace("192.168.0.0/24", "192.168.1.0/24"))


def _stale_copy(run: Invoke, tmp_path: Path, *flags: str) -> Path:
    """Issue #28's sequence up to the update: `show bravo > f`, a colleague sets the port to
    7000, f edited (another field)."""
    mine = _mine(run, tmp_path, *flags)
    _colleague_sets_port_7000(run, *flags)
    _edit(mine)
    return mine


# -- the sequence of issue #28 --------------------------------------------------------------------
def test_show_edit_update_after_a_colleagues_change_is_exit_4(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    _bravo(run)
    mine = _mine(run, tmp_path)
    based_on = _version(s3)
    _colleague_sets_port_7000(run)
    current = _version(s3)
    _edit(mine)
    before = objects_in(s3)

    result = run("tenant", "update", "bravo", "-f", str(mine))

    assert result.exit_code == 4, result.output
    assert _port(s3) == 7000
    assert objects_in(s3) == before
    assert f"{mine} is based on version {based_on}" in result.stderr
    assert f"bravo is now at version {current} (modified " in result.stderr
    assert "nothing was written" in result.stderr
    assert f"hint: see what changed: `redmica tenant show bravo | diff {mine} -`" in result.stderr
    assert f"--if-match {current}`" in result.stderr

    as_json = run("tenant", "update", "bravo", "-f", str(mine), "--output", "json")
    assert as_json.exit_code == 4 and _port(s3) == 7000
    data = as_json.json()
    assert data["based_on"]["version_id"] == based_on
    assert data["based_on"]["from"] == f"{mine} (line 1)"
    assert data["current"]["version_id"] == current
    etag = s3.head_object(Bucket=BUCKET, Key="tenants/bravo.yaml")["ETag"]
    assert data["current"]["etag"] == etag.strip('"')


def test_without_a_colleague_the_show_edit_update_applies_and_says_so(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    _bravo(run)
    mine = _mine(run, tmp_path)
    based_on = _version(s3)
    _edit(mine)

    result = run("tenant", "update", "bravo", "-f", str(mine), "-O", "json")

    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    data = result.json()
    assert data["based_on"] == {
        "version_id": based_on,
        "etag": data["based_on"]["etag"],
        "from": f"{mine} (line 1)",
    }
    assert data["previous_version_id"] == based_on
    assert data["version_id"] == _version(s3) != based_on
    assert _stored(s3)["property"]["limit_ips"] == ["192.168.1.0/24"]  # type: ignore[index]
    assert _stored(s3)["db"]["password"] == CANARY_PASSWORD  # type: ignore[index]


def test_running_the_same_update_twice_is_no_change_not_a_conflict(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    # The second run is based on a version that is no longer current, but it would change
    # nothing: no change made since can be lost, so it is "no changes", exit 0.
    _bravo(run)
    mine = _mine(run, tmp_path)
    _edit(mine)
    assert run("tenant", "update", "bravo", "-f", str(mine)).exit_code == 0
    before = objects_in(s3)
    again = run("tenant", "update", "bravo", "-f", str(mine))
    assert again.exit_code == 0, again.output
    assert "no changes; nothing written" in again.stderr
    assert objects_in(s3) == before


# -- what the first line is, and where it counts -------------------------------------------------
def test_show_puts_the_version_on_the_first_line_of_stdout(s3: S3Client, run: Invoke) -> None:
    _bravo(run)
    shown = run("tenant", "show", "bravo")
    first, second, *document = shown.stdout.splitlines()
    etag = s3.head_object(Bucket=BUCKET, Key="tenants/bravo.yaml")["ETag"].strip('"')
    assert first == f"# redmica tenant bravo version {_version(s3)} etag {etag}"
    assert second.startswith(f"# from s3://{BUCKET}/tenants/bravo.yaml (")
    assert "version" not in shown.stderr  # it used to go to stderr, out of the file
    assert yaml.safe_load("\n".join(document)) == yaml.safe_load(shown.stdout)


def test_validate_add_and_sync_read_the_line_as_a_comment(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    _bravo(run)
    repository = tmp_path / "tenants"
    repository.mkdir()
    shown = run("tenant", "show", "bravo").stdout
    (repository / "bravo.yaml").write_text(shown)
    assert run("tenant", "validate", str(repository)).exit_code == 0
    _colleague_sets_port_7000(run)
    # A tenants repository is the desired state: sync plans against the current document.
    plan = run("tenant", "sync", str(repository), "-O", "json")
    assert plan.exit_code == 0, plan.output
    assert [c["tenant"] for c in plan.json()["changes"]] == ["bravo"]
    # `show bravo` as a template for another tenant: add ignores the line, nothing stores it.
    template = shown.replace("bravo", "charlie").replace("'********'", "pw-charlie")
    added = run("tenant", "add", "charlie", "-f", "-", input=template)
    assert added.exit_code == 0, added.output
    body = s3.get_object(Bucket=BUCKET, Key="tenants/charlie.yaml")["Body"].read()
    assert b"#" not in body


def test_a_file_without_a_version_still_updates_with_a_warning(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    # Runbooks call `tenant update ID -f FILE` with hand-written files: they keep working, and
    # the warning makes visible that a change made since is not detected (here: port 7000).
    _bravo(run)
    _colleague_sets_port_7000(run)
    replaced = _version(s3)
    handwritten = tmp_path / "bravo.yaml"
    handwritten.write_text(tenant_yaml("bravo", db__port=5432))

    result = run("tenant", "update", "bravo", "-f", str(handwritten), "-O", "json")

    assert result.exit_code == 0, result.output
    assert (
        f"warning: {handwritten} names no version: it replaced bravo's version {replaced}"
        in result.stderr
    )
    assert "--if-match VERSION" in result.stderr
    data = result.json()
    assert data["based_on"] is None and data["previous_version_id"] == replaced
    assert data["changes"] == [{"field": "db.port", "old": 7000, "new": 5432}]
    assert _port(s3) == 5432


def test_if_match_makes_a_file_without_a_version_conditional(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    _bravo(run)
    expected = _version(s3)
    _colleague_sets_port_7000(run)
    handwritten = tmp_path / "bravo.yaml"
    handwritten.write_text(tenant_yaml("bravo", db__port=6000))
    before = objects_in(s3)

    stale = run("tenant", "update", "bravo", "-f", str(handwritten), "--if-match", expected)
    assert stale.exit_code == 4, stale.output
    assert f"is not at the version --if-match names (version {expected})" in stale.stderr
    assert objects_in(s3) == before and _port(s3) == 7000

    # The current version, as a version id or as the ETag (quoted as S3 gives it, or not).
    head = s3.head_object(Bucket=BUCKET, Key="tenants/bravo.yaml")
    ok = run("tenant", "update", "bravo", "-f", str(handwritten), "--if-match", head["ETag"])
    assert ok.exit_code == 0, ok.output
    assert "warning" not in ok.stderr and _port(s3) == 6000
    handwritten.write_text(tenant_yaml("bravo", db__port=6001))
    ok = run("tenant", "update", "bravo", "-f", str(handwritten), "--if-match", _version(s3))
    assert ok.exit_code == 0, ok.output
    assert _port(s3) == 6001


def test_if_match_overrides_a_stale_first_line_on_purpose(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    _bravo(run)
    mine = _stale_copy(run, tmp_path)
    refused = run("tenant", "update", "bravo", "-f", str(mine))
    assert refused.exit_code == 4
    current = _version(s3)
    # The operator looked at the difference and replaces it on purpose, as the hint says.
    forced = run("tenant", "update", "bravo", "-f", str(mine), "--if-match", current)
    assert forced.exit_code == 0, forced.output
    assert "db.port: 7000 -> 5432" in forced.stderr
    assert _port(s3) == 5432


def test_a_first_line_of_another_tenant_is_refused(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    _bravo(run)
    run("tenant", "add", "charlie", "-f", "-", input=tenant_yaml("charlie"))
    shown = run("tenant", "show", "charlie").stdout
    before = objects_in(s3)
    result = run("tenant", "update", "bravo", "-f", "-", input=shown)
    assert result.exit_code == 2, result.output
    assert (
        "<stdin> (line 1): the document was read from tenant 'charlie', not 'bravo'"
        in result.stderr
    )
    assert objects_in(s3) == before


def test_a_mangled_first_line_is_refused_not_ignored(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    _bravo(run)
    shown = run("tenant", "show", "bravo").stdout
    mangled = shown.replace(" etag ", " etga ", 1)
    before = objects_in(s3)
    result = run("tenant", "update", "bravo", "-f", "-", input=mangled.replace("5432", "1"))
    assert result.exit_code == 2, result.output
    assert "<stdin>: line 1: does not read as the version line" in result.stderr
    assert objects_in(s3) == before


def test_a_tenant_removed_since_the_show_is_a_conflict(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    _bravo(run)
    mine = _mine(run, tmp_path)
    assert run("tenant", "remove", "bravo", "--yes").exit_code == 0
    before = objects_in(s3)
    result = run("tenant", "update", "bravo", "-f", str(mine))
    assert result.exit_code == 4, result.output
    assert "and the tenant was removed since; nothing was written" in result.stderr
    assert objects_in(s3) == before


def test_the_write_itself_is_conditional_on_the_version_checked(
    s3: S3Client, run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The colleague writes after update checked the version and before it writes: If-Match
    # on the ETag read refuses the write, so checking first never turns into a blind write.
    from redmica_ops.tenants.store import TenantStore

    _bravo(run)
    mine = _mine(run, tmp_path)
    _edit(mine)
    original = TenantStore.load_all
    raced: list[bool] = []

    def load_all(self: TenantStore) -> object:
        if not raced:
            raced.append(True)
            _colleague_sets_port_7000(run)
        return original(self)

    monkeypatch.setattr(TenantStore, "load_all", load_all)
    result = run("tenant", "update", "bravo", "-f", str(mine))
    assert raced and result.exit_code == 4, result.output
    assert "changed or removed by someone else" in result.stderr
    assert _port(s3) == 7000


def test_an_unversioned_bucket_uses_the_etag(s3: S3Client, run: Invoke, tmp_path: Path) -> None:
    plain = "redmica-config-unversioned"
    boto3.client("s3").create_bucket(Bucket=plain)
    _bravo(run, bucket=plain)
    mine = _stale_copy(run, tmp_path, f"--bucket={plain}")
    assert mine.read_text().startswith("# redmica tenant bravo etag ")
    result = run(f"--bucket={plain}", "tenant", "update", "bravo", "-f", str(mine))
    assert result.exit_code == 4, result.output
    assert f"{mine} is based on version " in result.stderr
    assert _port(s3, bucket=plain) == 7000


# -- the other ways in: edit --from, a broken document -------------------------------------------
def test_edit_from_a_stale_show_file_is_refused_before_the_editor_opens(
    s3: S3Client, run: Invoke, tmp_path: Path
) -> None:
    _bravo(run)
    mine = _stale_copy(run, tmp_path)
    opened: list[str] = []

    def editor(text: str) -> str | None:
        opened.append(text)
        return text

    app = Application()
    app.edit_text = editor
    result = run("tenant", "edit", "bravo", "--from", str(mine), app=app)
    assert result.exit_code == 4, result.output
    assert opened == [] and _port(s3) == 7000
    # A file from an up-to-date show is edited as usual.
    fresh = _mine(run, tmp_path)
    _edit(fresh)
    app = Application()
    app.edit_text = lambda text: text.replace("port: 7000", "port: 7001")
    done = run("tenant", "edit", "bravo", "--from", str(fresh), app=app)
    assert done.exit_code == 0, done.output
    assert _port(s3) == 7001


def test_repairing_a_broken_document_from_show_is_conditional_too(
    s3: S3Client, run: Invoke
) -> None:
    s3.put_object(
        Bucket=BUCKET, Key="tenants/beta.yaml", Body=tenant_yaml("beta", db__port=0).encode()
    )
    shown = run("tenant", "show", "beta")
    assert shown.exit_code == 2 and shown.stdout.startswith("# redmica tenant beta version ")
    # Someone else repairs it first, differently.
    s3.put_object(
        Bucket=BUCKET, Key="tenants/beta.yaml", Body=tenant_yaml("beta", db__port=7000).encode()
    )
    mine = shown.stdout.replace("  port: 0\n", "  port: 6000\n")
    result = run("tenant", "update", "beta", "-f", "-", input=mine)
    assert result.exit_code == 4, result.output
    assert _port(s3, "beta") == 7000


# -- reading the line -----------------------------------------------------------------------------
def test_only_the_leading_comments_name_a_version() -> None:
    from redmica_ops.tenants import basis

    found = basis.from_document(b"\n# note\n# redmica tenant a version v1 etag e1\ndb: {}\n", "f")
    assert found == basis.Basis("v1", "e1", "f (line 3)", "a")
    assert basis.from_document(b"db: {}\n# redmica tenant a version v1 etag e1\n", "f") is None
    assert basis.from_document(b"db: {}\n", "f") is None
    with pytest.raises(UsageError, match="line 1: does not read as the version line"):
        basis.from_document(b"# redmica tenant a version\ndb: {}\n", "f")
    with pytest.raises(UsageError, match="--if-match needs a version id or an ETag"):
        basis.given("  ")


# -- the other read-modify-write paths -------------------------------------------------------------
def test_claims_repair_keeps_a_claim_its_tenant_uses_again_since_the_audit(
    s3: S3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The audit found bravo's claim on sub_domain `old` orphaned; before the repair ran, bravo
    # took `old` back (its claim was still there, so nothing was rewritten and the claim's ETag
    # did not change). Releasing on that ETag alone would leave `old` unclaimed while used.
    from redmica_ops.tenants.claims import ClaimStore
    from redmica_ops.tenants.model import parse_tenant
    from redmica_ops.tenants.registry import TenantRegistry
    from redmica_ops.tenants.store import TenantStore

    registry = TenantRegistry(TenantStore(s3, BUCKET))

    def bravo(sub_domain: str) -> object:
        text = tenant_yaml("bravo", property__sub_domain=sub_domain)
        return parse_tenant("bravo", text.encode(), "x")

    registry.add("bravo", bravo("old"), "x")  # type: ignore[arg-type]
    with monkeypatch.context() as patched:  # a crash before the old claim was released
        patched.setattr(ClaimStore, "release", lambda self, tenant_id, claims: [])
        registry.update("bravo", bravo("new"), "x")  # type: ignore[arg-type]
    audit = registry.audit_claims()
    assert [h.claim.shown for h in audit.orphans] == ["'old'"]
    registry.update("bravo", bravo("old"), "x")  # type: ignore[arg-type]

    assert registry.repair_claims(audit) == []
    assert registry.audit_claims().clean


def _race_after_listing(run: Invoke, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The colleague sets bravo's port to 7000 right after the next `load_all` (a verb has read
    the document and is about to write it)."""
    from redmica_ops.tenants.store import Listing, TenantStore

    original = TenantStore.load_all
    raced: list[bool] = []

    def load_all(self: TenantStore) -> Listing:
        listing = original(self)
        if not raced:
            raced.append(True)
            _colleague_sets_port_7000(run)
        return listing

    monkeypatch.setattr(TenantStore, "load_all", load_all)
    return raced


def test_restore_is_conditional_on_the_version_it_read(
    s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bravo(run)
    first = _version(s3)
    changed = run("tenant", "update", "bravo", "-f", "-", input=tenant_yaml("bravo", db__port=1))
    assert changed.exit_code == 0
    raced = _race_after_listing(run, monkeypatch)
    result = run("tenant", "restore", "bravo", first, "--yes")
    assert raced and result.exit_code == 4, result.output
    assert _port(s3) == 7000


def test_sync_apply_is_conditional_on_what_the_plan_read(
    s3: S3Client, run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bravo(run)
    repository = tmp_path / "tenants"
    repository.mkdir()
    (repository / "bravo.yaml").write_text(tenant_yaml("bravo", db__port=6000))
    raced = _race_after_listing(run, monkeypatch)  # the plan is read, then the colleague
    result = run("tenant", "sync", str(repository), "--apply", "--yes")
    assert raced and result.exit_code == 4, result.output
    assert "applied before the failure: nothing" in result.stderr
    assert _port(s3) == 7000


def test_suspend_is_conditional_on_the_version_it_read(
    s3: S3Client, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bravo(run)
    raced = _race_after_listing(run, monkeypatch)  # inside the registry's update
    result = run("tenant", "suspend", "bravo")
    assert raced and result.exit_code == 4, result.output
    assert _port(s3) == 7000
    assert "status" not in _stored(s3)


def test_move_is_conditional_on_the_version_each_step_read(s3: S3Client, run: Invoke) -> None:
    from redmica_ops.cells.config import Cell, CellMap
    from redmica_ops.cells.move import MoveRequest, move_tenant
    from redmica_ops.errors import Conflict
    from redmica_ops.runs.pacing import FakeClock
    from redmica_ops.tenants.store import TenantStore

    _bravo(run)

    class Restarts:
        def image(self, cell: Cell) -> str | None:
            return "redmica:1"

        def reload(self, cell: Cell) -> tuple[bool, str]:
            _colleague_sets_port_7000(run)  # while the target cell restarts
            return True, "restarted"

    cells = CellMap((Cell("a", "svc-a", "prod"), Cell("b", "svc-b", "prod")), configured=True)
    with pytest.raises(Conflict):
        move_tenant(
            MoveRequest("bravo", "b", drain_seconds=0),
            TenantStore(s3, BUCKET),
            cells,
            Restarts(),
            None,
            FakeClock(),
        )
    assert _port(s3) == 7000


def test_restore_names_the_version_it_replaced(s3: S3Client, run: Invoke) -> None:
    _bravo(run)
    first = _version(s3)
    changed = run("tenant", "update", "bravo", "-f", "-", input=tenant_yaml("bravo", db__port=1))
    assert changed.exit_code == 0
    replaced = _version(s3)
    data = run("tenant", "restore", "bravo", first, "--yes", "-O", "json").json()
    assert data["previous_version_id"] == replaced
    assert data["version_id"] == _version(s3) not in (first, replaced)
    assert data["based_on"] is None
