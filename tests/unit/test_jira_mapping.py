"""Jira webhook bodies become planned ledger commands, a reason to ignore them, or Unmappable.

Where the fixture shapes come from (anonymised; keys, versions and people set to ours):
- Jira Cloud ``jira:issue_updated`` with ``fieldId: fixVersions`` items (``from``/``fromString``/
  ``to``/``toString``) and ``jira:issue_created`` with ``fields.fixVersions`` plus a changelog:
  captures in zulip/zulip ``zerver/webhooks/jira/fixtures`` (``issue_updated__status.json``,
  ``created_v1_with_project_and_version.json``).
- An item with ``field`` but no ``fieldId`` (Jira Server/Data Center), and a numeric changelog
  id without ``user``: Atlassian's documented issue webhook example, as reproduced in
  mia-platform/integration-connector-agent's Jira source documentation.
- ``jira:version_created``: Atlassian's documented "Project Version Event" payload (same doc).
- ``jira:version_released``: a real Jira Cloud capture in the putit project's Jira plugin
  README (no ``user``, no ``releaseDate``, only ``userReleaseDate``).
- ``comment_created``: zulip/zulip ``zerver/webhooks/jira/fixtures/comment_created.json``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from integrations.jira import (
    DropFeature,
    JiraMapping,
    JiraPlan,
    JoinTrain,
    MoveFeature,
    PlanTrain,
    ReleaseTrain,
    Unmappable,
    plan_jira_delivery,
    train_kind,
)
from ledger.values import Classification, TrainKind

FIXTURES = Path(__file__).parent.parent / "fixtures" / "jira"
DEFAULTS = JiraMapping()


def fixture(name: str) -> Any:
    """A fresh copy of one stored Jira webhook body."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def fix_versions(*changes: tuple[str | None, str | None], key: str = "OBJ-603") -> Any:
    """The move fixture with its changelog items replaced by (from, to) fixVersions items."""
    payload = fixture("issue_updated_fix_version_move")
    payload["issue"]["key"] = key
    payload["changelog"]["items"] = [
        {"field": "Fix Version", "fieldId": "fixVersions", "fromString": old, "toString": new}
        for old, new in changes
    ]
    return payload


def only_command(plan: JiraPlan) -> Any:
    (command,) = plan.commands
    return command


# ================================================================== mapping


@pytest.mark.parametrize("name", ["5.5", "5.4.1", "5.1.7-hf2", " 5.6 "])
def test_a_version_named_like_a_train_is_that_train(name: str) -> None:
    """By default a version whose name is a train id stands for that train."""
    assert DEFAULTS.train_for(name) == name.strip()


@pytest.mark.parametrize("name", ["Objects 5.5", "v5.5", "5.5 GA", "Backlog", "", "5"])
def test_other_version_names_name_no_train_by_default(name: str) -> None:
    """Only a bare train id maps without configuration: no guessing inside longer names."""
    assert DEFAULTS.train_for(name) is None


def test_explicit_versions_map_globally_and_per_project_by_key_or_id() -> None:
    """A project's own map wins over the global one; names match ignoring case and blanks."""
    mapping = JiraMapping(
        versions={"Objects Autumn": "5.6", "5.5 Objects": "5.5"},
        projects={"OBJ": {"Objects Autumn": "5.7"}, "10400": {"Next": "5.8"}},
    )

    assert mapping.train_for("5.5 Objects") == "5.5"
    assert mapping.train_for("  objects autumn ") == "5.6"
    assert mapping.train_for("Objects Autumn", ["OBJ"]) == "5.7"
    assert mapping.train_for("Objects Autumn", ["SEC"]) == "5.6"
    assert mapping.train_for("Next", ["10400"]) == "5.8"
    assert mapping.train_for("Next") is None


def test_a_mapping_to_something_that_is_no_train_is_refused_by_name() -> None:
    """The configuration names the bad entry instead of failing on a delivery later."""
    with pytest.raises(ValidationError, match="'Objects Autumn' maps to 'autumn'"):
        JiraMapping(projects={"OBJ": {"Objects Autumn": "autumn"}})
    with pytest.raises(ValidationError, match="extra"):
        JiraMapping.model_validate({"version_map": {}})


def test_labels_classify_an_issue_and_otherwise_it_is_committed() -> None:
    """``anchor`` and ``stretch`` labels (any case) classify; no label means committed."""
    assert DEFAULTS.classification_for({"labels": ["customer-ask", "Anchor"]}) == "anchor"
    assert DEFAULTS.classification_for({"labels": ["stretch"]}) == "stretch"
    assert DEFAULTS.classification_for({"labels": ["storage"]}) == "committed"
    assert DEFAULTS.classification_for({"labels": "anchor"}) == "committed"
    assert DEFAULTS.classification_for({}) == "committed"


@pytest.mark.parametrize(
    "value",
    [
        "Stretch",
        {"self": "https://example/option/3", "value": "stretch", "id": "3"},
        [{"value": "stretch"}],
    ],
)
def test_a_classification_field_wins_over_labels(value: Any) -> None:
    """A custom field's text, select option or list of options names the classification."""
    mapping = JiraMapping(classification_field="customfield_10207")

    fields = {"labels": ["anchor"], "customfield_10207": value}

    assert mapping.classification_for(fields) == Classification.STRETCH


def test_an_unrecognised_classification_field_falls_back_to_labels_then_the_default() -> None:
    """A field value that names no classification is passed over, not guessed at."""
    mapping = JiraMapping(
        classification_field="customfield_10207",
        anchor_labels=("tentpole",),
        default_classification=Classification.STRETCH,
    )

    assert mapping.classification_for({"customfield_10207": "Must", "labels": ["tentpole"]}) == (
        "anchor"
    )
    assert mapping.classification_for({"customfield_10207": None}) == "stretch"


@pytest.mark.parametrize(
    ("train", "kind", "parent"),
    [
        ("5.5", TrainKind.MAJOR, None),
        ("5.4.1", TrainKind.MINOR, "5.4"),
        ("5.4.1.2", TrainKind.MINOR, "5.4"),
        ("5.1.7-hf2", TrainKind.HOTFIX, "5.1"),
        ("5.5-hf1", TrainKind.HOTFIX, "5.5"),
    ],
)
def test_a_train_id_implies_its_kind_and_parent(
    train: str, kind: TrainKind, parent: str | None
) -> None:
    """Two numbers are a major, more are a minor of the major, a suffix is a hotfix."""
    assert train_kind(train) == (kind, parent)


# ============================================================ issue updated


def test_a_removal_and_an_addition_in_one_changelog_are_a_move() -> None:
    """Jira's two fixVersions items (5.5 out, 5.6 in) plan one move, by its user, at its time."""
    plan = plan_jira_delivery(DEFAULTS, fixture("issue_updated_fix_version_move"))

    assert plan.commands == (
        MoveFeature(
            "5.5", "5.6", "OBJ-603", "Jira OBJ-603 fixVersions 5.5 → 5.6 (changelog 10105)"
        ),
    )
    assert plan.actor == "Maria Lopez"
    assert plan.occurred_at == datetime(2025, 11, 26, 10, 0, tzinfo=UTC)
    assert plan.anchor == "10105"


def test_an_addition_alone_brings_the_issue_into_the_train_with_its_classification() -> None:
    """A stretch-labelled issue given fix version 5.6 joins 5.6 as stretch, with its summary."""
    plan = plan_jira_delivery(DEFAULTS, fixture("issue_updated_fix_version_added"))

    assert only_command(plan) == JoinTrain(
        "5.6",
        "OBJ-611",
        "Object lock in governance mode",
        Classification.STRETCH,
        "Jira OBJ-611 fixVersions added 5.6 (changelog 10131)",
    )
    assert plan.actor == "Sam Okafor"


def test_a_removal_alone_drops_the_issue_from_the_train() -> None:
    """Fix version 5.5 taken away with nothing in its place is a drop from 5.5."""
    plan = plan_jira_delivery(DEFAULTS, fixture("issue_updated_fix_version_removed"))

    assert only_command(plan) == DropFeature(
        "5.5", "OBJ-603", "Jira OBJ-603 fixVersions removed 5.5 (changelog 10140)"
    )


def test_items_are_matched_on_field_id_not_on_the_display_name() -> None:
    """A "Fix Version" item without ``fieldId`` (an older Jira Server shape) is no change."""
    plan = plan_jira_delivery(DEFAULTS, fixture("issue_updated_field_without_field_id"))

    assert plan.commands == ()
    assert plan.ignored == "jira:issue_updated of OBJ-603 changes no fixVersions (by fieldId)"


def test_a_numeric_changelog_id_and_a_missing_user_are_tolerated() -> None:
    """Atlassian's documented example: ``"id": 10124`` as a number, no user: actor "jira"."""
    plan = plan_jira_delivery(DEFAULTS, fixture("issue_updated_numeric_changelog_without_user"))

    assert plan.anchor == "10124"
    assert plan.actor == "jira"
    assert only_command(plan) == JoinTrain(
        "5.6",
        "OBJ-620",
        "Bucket notifications to Kafka",
        Classification.COMMITTED,
        "Jira OBJ-620 fixVersions added 5.6 (changelog 10124)",
    )


@pytest.mark.parametrize(
    ("user", "actor"),
    [
        ({"name": "mlopez", "accountId": "5b10ac8d"}, "mlopez"),
        ({"accountId": "5b10ac8d"}, "5b10ac8d"),
        ({"displayName": "  ", "name": None}, "jira"),
        ("Maria", "jira"),
        ({"displayName": "Maria\nLopez\x00"}, "Maria Lopez"),
    ],
)
def test_the_actor_falls_back_from_display_name_to_name_to_account_id(
    user: Any, actor: str
) -> None:
    """Whoever Jira says did it, as printable text; "jira" when it names nobody."""
    payload = fixture("issue_updated_fix_version_move")
    payload["user"] = user

    assert plan_jira_delivery(DEFAULTS, payload).actor == actor


def test_a_change_naming_no_train_is_ignored_with_the_versions_it_named() -> None:
    """Versions that map to no train leave nothing to record, and the reason says which."""
    plan = plan_jira_delivery(DEFAULTS, fix_versions(("Backlog", None), (None, "Someday")))

    assert plan.commands == ()
    assert plan.ignored == (
        "Jira OBJ-603 fixVersions Backlog → Someday (changelog 10105): names no train"
    )


def test_when_one_side_names_no_train_the_other_side_alone_counts() -> None:
    """Backlog → 5.6 is an addition to 5.6; 5.5 → Backlog is a drop from 5.5."""
    into = only_command(
        plan_jira_delivery(DEFAULTS, fix_versions(("Backlog", None), (None, "5.6")))
    )
    out_of = only_command(
        plan_jira_delivery(DEFAULTS, fix_versions(("5.5", None), (None, "Backlog")))
    )

    assert (type(into), into.train, into.reason) == (
        JoinTrain,
        "5.6",
        "Jira OBJ-603 fixVersions Backlog → 5.6 (changelog 10105)",
    )
    assert (type(out_of), out_of.train) == (DropFeature, "5.5")


def test_one_item_with_both_sides_is_a_move_too() -> None:
    """An item carrying both fromString and toString moves the feature."""
    plan = plan_jira_delivery(DEFAULTS, fix_versions(("5.5", "5.6")))

    assert only_command(plan) == MoveFeature(
        "5.5", "5.6", "OBJ-603", "Jira OBJ-603 fixVersions 5.5 → 5.6 (changelog 10105)"
    )


def test_renaming_to_a_version_of_the_same_train_changes_nothing() -> None:
    """5.5 → "Objects 5.5", both train 5.5, leaves the feature where it is."""
    mapping = JiraMapping(versions={"Objects 5.5": "5.5"})

    plan = plan_jira_delivery(mapping, fix_versions(("5.5", None), (None, "Objects 5.5")))

    assert plan.commands == ()
    assert plan.ignored == (
        "Jira OBJ-603 fixVersions 5.5 → Objects 5.5 (train 5.5) (changelog 10105): "
        "leaves its train unchanged"
    )


def test_with_several_trains_on_one_side_the_first_counts_and_the_rest_are_named() -> None:
    """A feature is in one open train at a time: 5.6 counts, 5.6.1 is left aside, and said so."""
    plan = plan_jira_delivery(DEFAULTS, fix_versions((None, "5.6"), (None, "5.6.1")))

    assert only_command(plan).train == "5.6"
    assert plan.notes == ("5.6.1 left aside: a feature is in one open train at a time",)


def test_a_project_mapping_applies_to_the_issues_project() -> None:
    """ "Objects 5.6" is 5.6 in project OBJ (its key in the issue's fields)."""
    mapping = JiraMapping(projects={"OBJ": {"Objects 5.6": "5.6"}})

    plan = plan_jira_delivery(mapping, fix_versions((None, "Objects 5.6")))

    assert only_command(plan).train == "5.6"
    assert only_command(plan).reason.startswith(
        "Jira OBJ-603 fixVersions added Objects 5.6 (train 5.6)"
    )


def test_without_a_changelog_an_issue_update_is_ignored() -> None:
    """Jira Server sends ``jira:issue_updated`` for a comment, with no changelog at all."""
    payload = fixture("issue_updated_fix_version_move")
    del payload["changelog"]

    assert plan_jira_delivery(DEFAULTS, payload).ignored == "jira:issue_updated without a changelog"


def test_long_or_unprintable_summaries_become_clean_titles() -> None:
    """Control characters become blanks and a runaway summary is cut, so the ledger takes it."""
    payload = fixture("issue_updated_fix_version_added")
    payload["issue"]["fields"]["summary"] = "Object lock\x00\n in governance mode" + "!" * 900

    title = only_command(plan_jira_delivery(DEFAULTS, payload)).title

    assert title.startswith("Object lock in governance mode!!!")
    assert len(title) == 500


# ============================================================ issue created


def test_a_created_issue_with_a_fix_version_joins_that_train() -> None:
    """A new anchor-labelled issue with fix version 5.6 joins 5.6 as an anchor."""
    plan = plan_jira_delivery(DEFAULTS, fixture("issue_created_with_fix_versions"))

    assert only_command(plan) == JoinTrain(
        "5.6",
        "OBJ-630",
        "Erasure coding 12+4 profile",
        Classification.ANCHOR,
        "Jira OBJ-630 created with fixVersions 5.6",
    )
    assert (plan.actor, plan.anchor) == ("Priya Raman", "10160")


def test_a_created_issue_without_a_mapped_fix_version_is_ignored() -> None:
    """No fix version, or none that is a train, leaves nothing to record."""
    without = fixture("issue_created_with_fix_versions")
    without["issue"]["fields"]["fixVersions"] = []
    unmapped = fixture("issue_created_with_fix_versions")
    unmapped["issue"]["fields"]["fixVersions"] = [{"id": "10001", "name": "Backlog"}]

    assert plan_jira_delivery(DEFAULTS, without).ignored == (
        "OBJ-630 was created without fixVersions"
    )
    assert plan_jira_delivery(DEFAULTS, unmapped).ignored == (
        "OBJ-630 was created with fixVersions Backlog: no train"
    )


# ================================================================= versions


def test_a_created_version_named_after_a_train_plans_it() -> None:
    """Version 5.7 plans major 5.7, titled by the version's description."""
    plan = plan_jira_delivery(DEFAULTS, fixture("version_created"))

    assert only_command(plan) == PlanTrain(
        "5.7", TrainKind.MAJOR, None, "Objects 5.7: multi-site replication"
    )
    assert plan.anchor == "version-10571"
    assert plan.occurred_at == datetime(2025, 12, 1, 10, 0, tzinfo=UTC)


def test_a_created_version_maps_through_its_project_id() -> None:
    """Version events carry only ``projectId``: a mapping keyed by that id applies."""
    payload = fixture("version_created")
    payload["version"].update(name="Objects 5.4.1", description="")
    mapping = JiraMapping(projects={"10400": {"Objects 5.4.1": "5.4.1"}})

    assert only_command(plan_jira_delivery(mapping, payload)) == PlanTrain(
        "5.4.1", TrainKind.MINOR, "5.4", "Objects 5.4.1"
    )


def test_a_released_version_releases_its_train() -> None:
    """Version 5.5 released: train 5.5 through gate 4, at the delivery's timestamp."""
    plan = plan_jira_delivery(DEFAULTS, fixture("version_released"))

    assert only_command(plan) == ReleaseTrain("5.5", "5.5")
    assert plan.occurred_at == datetime(2025, 12, 2, 10, 0, tzinfo=UTC)


def test_without_a_timestamp_a_release_happened_on_its_release_date() -> None:
    """No timestamp: the version's releaseDate, at midnight UTC."""
    payload = fixture("version_released")
    del payload["timestamp"]
    payload["version"]["releaseDate"] = "2025-12-01"

    assert plan_jira_delivery(DEFAULTS, payload).occurred_at == datetime(2025, 12, 1, tzinfo=UTC)


def test_a_version_that_names_no_train_is_ignored() -> None:
    """ "Sprint 42" is no train: nothing to plan or release."""
    payload = fixture("version_released")
    payload["version"]["name"] = "Sprint 42"

    assert (
        plan_jira_delivery(DEFAULTS, payload).ignored == "Jira version 'Sprint 42' names no train"
    )


# ============================================================ not mapped, garbage


def test_other_events_are_ignored_as_not_mapped() -> None:
    """A comment on an issue maps to nothing, and says so."""
    plan = plan_jira_delivery(DEFAULTS, fixture("comment_created"))

    assert (plan.commands, plan.ignored) == ((), "Jira comment_created is not mapped")


GARBAGE: list[tuple[str, Any]] = [
    ("a list", [{"webhookEvent": "jira:issue_updated"}]),
    ("a string", "jira:issue_updated"),
    ("null", None),
    ("no webhookEvent", {"issue": {"key": "OBJ-603"}}),
    ("a numeric webhookEvent", {"webhookEvent": 7}),
    ("a changelog that is text", {"webhookEvent": "jira:issue_updated", "changelog": "5.6"}),
    (
        "items that are an object",
        {"webhookEvent": "jira:issue_updated", "changelog": {"id": "1", "items": {}}},
    ),
    (
        "an item that is a list",
        {"webhookEvent": "jira:issue_updated", "changelog": {"id": "1", "items": [[]]}},
    ),
    (
        "a changelog id that is an object",
        {"webhookEvent": "jira:issue_updated", "changelog": {"id": {"n": 1}, "items": []}},
    ),
    ("a version name that is a number", fix_versions((None, 5.6))),  # type: ignore[arg-type]
    ("no issue key", {**fix_versions((None, "5.6")), "issue": {"fields": {}}}),
    ("a bad issue key", fix_versions((None, "5.6"), key="OBJ 603; DROP")),
    ("a timestamp in words", {**fix_versions((None, "5.6")), "timestamp": "yesterday"}),
    ("a timestamp past year 9999", {**fix_versions((None, "5.6")), "timestamp": 10**30}),
    ("a boolean timestamp", {**fix_versions((None, "5.6")), "timestamp": True}),
    ("no version object", {"webhookEvent": "jira:version_released", "version": ["5.5"]}),
    ("a version without a name", {"webhookEvent": "jira:version_created", "version": {"id": 1}}),
    (
        "a release date in words",
        {
            "webhookEvent": "jira:version_released",
            "version": {"name": "5.5", "releaseDate": "soon"},
        },
    ),
    (
        "fixVersions that are an object",
        {
            "webhookEvent": "jira:issue_created",
            "issue": {"key": "OBJ-1", "fields": {"fixVersions": {}}},
        },
    ),
]


@pytest.mark.parametrize(("what", "payload"), GARBAGE, ids=[what for what, _ in GARBAGE])
def test_garbled_deliveries_are_unmappable_with_a_reason(what: str, payload: Any) -> None:
    """A body of a mapped kind that cannot become commands is refused with why, never a crash."""
    with pytest.raises(Unmappable) as refusal:
        plan_jira_delivery(DEFAULTS, payload)

    assert str(refusal.value)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*path, index))


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    changed = copy.deepcopy(document)
    if not path:
        return value
    parent = changed
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return changed


NOISE: list[Any] = [None, True, -1, 1.5e300, "", "\x00 ∅", [], {}, {"value": 0}, [None]]
FIXTURE_NAMES = sorted(path.stem for path in FIXTURES.glob("*.json"))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_any_value_of_a_real_payload_replaced_by_noise_plans_or_is_unmappable(name: str) -> None:
    """Every field of every fixture, swapped for each kind of noise: a plan or Unmappable."""
    document = fixture(name)
    for path in list(_paths(document)):
        for noise in NOISE:
            try:
                plan = plan_jira_delivery(DEFAULTS, _replaced(document, path, noise))
            except Unmappable:
                continue
            assert plan.commands or plan.ignored, f"{name} {path} = {noise!r}"


KEYS = st.sampled_from(
    [
        "webhookEvent", "timestamp", "user", "displayName", "issue", "key", "fields",
        "summary", "labels", "project", "id", "changelog", "items", "fieldId", "fromString",
        "toString", "fixVersions", "name", "version", "projectId", "releaseDate",
    ]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        ["jira:issue_updated", "jira:issue_created", "jira:version_created",
         "jira:version_released", "fixVersions", "5.5", "5.6", "OBJ-603", "1764151200000"]
    )
)  # fmt: skip
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(KEYS | st.text(max_size=6), children, max_size=6)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_any_json_plans_or_is_unmappable(payload: Any) -> None:
    """Whatever JSON arrives, planning answers with a plan or Unmappable, nothing else."""
    try:
        plan = plan_jira_delivery(DEFAULTS, payload)
    except Unmappable:
        return
    assert plan.commands or plan.ignored
