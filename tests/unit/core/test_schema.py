"""The known-keys schema of params.yaml: misspelled and missing keys are named, with the fix."""

from __future__ import annotations

import copy

import pytest
from conftest import REPO, tiny_params

from atelier.core import schema
from atelier.core.config import ParamsError, load_params

PARAMS = load_params(REPO / "params.yaml")


def _changed(edit) -> dict:
    params = copy.deepcopy(PARAMS)
    edit(params)
    return params


def test_the_project_params_and_the_tiny_test_params_match_the_schema():
    assert schema.problems(PARAMS) == [], "params.yaml and src/atelier/core/schema.py disagree"
    assert schema.problems(tiny_params()) == []
    schema.check_keys(PARAMS)


def test_every_schema_key_is_in_the_project_params():
    """The schema lists nothing params.yaml lacks (besides optional keys and sections of features not merged)."""
    def walk(node, spec, where):
        for key, inner in spec.items():
            if isinstance(inner, schema.Optional) or inner is schema.OPEN:
                continue
            assert key in node, f"schema key '{where}{key}' is not in params.yaml"
            if isinstance(inner, dict):
                walk(node[key], inner, f"{where}{key}.")

    walk(PARAMS, schema.SCHEMA, "")


def test_a_misspelled_key_is_named_with_the_likely_fix():
    found = schema.problems(_changed(lambda p: p["segmentation"].update(n_inits=50)))
    assert found == ["unknown key 'segmentation.n_inits' (did you mean 'segmentation.n_init'?)"]


def test_a_renamed_key_is_reported_both_as_unknown_and_as_missing():
    params = _changed(lambda p: p["segmentation"].update(kk=p["segmentation"].pop("k")))
    with pytest.raises(ParamsError) as error:
        schema.check_keys(params, "/project/params.yaml")
    message = str(error.value)
    assert message.startswith("/project/params.yaml: ")
    assert "unknown key 'segmentation.kk' (did you mean 'segmentation.k'?)" in message
    assert "missing key 'segmentation.k'; restore it from the project's params.yaml" in message
    assert "src/atelier/core/schema.py" in message


def test_keys_are_checked_at_every_depth_and_under_user_chosen_names():
    found = schema.problems(_changed(lambda p: (
        p["simulate"]["personas"]["lapsing"].update(shares=0.1),
        p["simulate"]["calendar"]["events"]["black_friday"].pop("traffic"),
        p["robustness"]["fairness"]["gaps"].update(aucc=0.1),
        p.update(segmentaton={"k": 3}),
    )))
    assert sorted(found) == [
        "missing key 'simulate.calendar.events.black_friday.traffic'; restore it from the project's params.yaml",
        "unknown key 'robustness.fairness.gaps.aucc' (did you mean 'robustness.fairness.gaps.auc'?)",
        "unknown key 'segmentaton' (did you mean 'segmentation'?)",
        "unknown key 'simulate.personas.lapsing.shares' (did you mean 'simulate.personas.lapsing.share'?)",
    ]


def test_a_key_far_from_every_known_one_lists_what_the_section_takes():
    (found,) = schema.problems(_changed(lambda p: p["validate"].update(colour="red")))
    assert found == "unknown key 'validate.colour' (validate takes: valid_from, valid_until, max_bad_value_share)"


def test_user_named_mappings_and_optional_keys_are_accepted():
    params = _changed(lambda p: (
        p["replay"]["policy"]["banners"].update({"New Segment": "welcome"}),
        p["prep"]["engagement_weights"].update(wishlist=2.0),
        p["simulate"]["personas"].update(night_owl=copy.deepcopy(p["simulate"]["personas"]["lapsing"])),
        p.update(run_label="Quick run"),
    ))
    assert schema.problems(params) == []


def test_a_typo_in_the_later_phases_sections_is_caught():
    (found,) = schema.problems(_changed(lambda p: p["ope"]["estimators"].update(nboot=10)))
    assert found.startswith("unknown key 'ope.estimators.nboot'")
    (found,) = schema.problems(_changed(lambda p: p["compute"]["spark"].update(mastr="local[1]")))
    assert found.startswith("unknown key 'compute.spark.mastr'")


def test_a_section_that_is_not_a_mapping_is_reported():
    assert schema.problems(_changed(lambda p: p.update(timeline=["2025-01-01"]))) == [
        "'timeline' must be a mapping of keys (as in the project's params.yaml), found ['2025-01-01']"
    ]
