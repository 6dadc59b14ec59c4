"""Parameter bounds: every parameter of every page has one, every profile is
inside its own, and values outside are refused by ``resolve`` (and the CLI,
rc 2, before any kernel starts) with a one-line error naming the page, the
parameter, the value and what was expected."""

import inspect
import math

import pytest

from patchbook.__main__ import main
from patchbook.pages import profiles
from patchbook.pages.profiles import (
    Choice,
    Context,
    DataFile,
    Flag,
    Int,
    Keys,
    ListOf,
    OrNone,
    Overrides,
    Real,
    Text,
)
from patchbook.style import pairs as style_pairs

# ------------------------------------------------------- the pages' tables ----


@pytest.mark.parametrize("page", profiles.notebooks())
def test_every_parameter_has_a_bound_and_every_bound_a_parameter(page):
    params = set(profiles.table(page)["laptop"])
    declared = set(profiles.bounds(page))
    assert params - declared == set(), f"{page}: parameters without a bound"
    assert declared - params == set(), f"{page}: bounds of no parameter"
    assert all(isinstance(b, profiles.Bound) for b in profiles.bounds(page).values())


@pytest.mark.parametrize("page", profiles.notebooks())
@pytest.mark.parametrize("profile", profiles.PROFILE_NAMES)
def test_every_profile_satisfies_its_own_bounds(page, profile):
    profiles.check(page, profiles.table(page)[profile])   # raises ProfileError otherwise
    assert profiles.resolve(page, profile)["profile"] == profile


def test_the_authors_larger_cifar_runs_are_valid_rows():
    from patchbook.pages.profiles.cifar10_table import PAPER_ROWS

    p = profiles.resolve("cifar10-table", "paper", {"rows": PAPER_ROWS})
    assert p.rows == PAPER_ROWS


def test_a_parameter_without_a_bound_is_refused(monkeypatch):
    from patchbook.pages.profiles import data_overview

    monkeypatch.setattr(data_overview, "BOUNDS", {k: b for k, b in data_overview.BOUNDS.items() if k != "n_show"})
    with pytest.raises(profiles.ProfileError, match="data-overview: parameter 'n_show' has no declared bound"):
        profiles.resolve("data-overview", "smoke")


def test_shared_choices_are_the_librarys():
    from patchbook.patchknn import encoding, pipeline
    from patchbook.style import decoder, methods, optimize

    assert profiles.WHITENING.options == pipeline.WHITENINGS
    assert profiles.HEAD.options == pipeline.HEADS
    assert profiles.FORMULATION.options == encoding.FORMULATIONS
    assert set(profiles.STYLE_METHODS.options) == set(methods.METHODS)
    assert set(profiles.DECODERS.options) == set(decoder.PRESETS)
    for bound, fn in ((profiles.GATYS, optimize.gatys), (profiles.STROTSS, optimize.strotss)):
        keywords = set(inspect.signature(fn).parameters)
        assert set(bound.bounds) <= keywords - {"content", "style", "seed", "history"}, fn.__name__


# ---------------------------------------------- values outside are refused ----

PROBES = [
    # (page, parameter, value, what the error says was expected)
    ("cifar10-table", "n_atoms", -5, "an int >= 1"),
    ("cifar10-table", "k", 2, "a number in (0, 1]"),
    ("cifar10-table", "lam", -1, "a number >= 0"),
    ("cifar10-table", "epochs", -3, "an int >= 1"),
    ("cifar10-table", "patch", 100, "an int in [1, 32]"),
    ("cifar10-table", "whitening", "foo", "one of 'zca', 'pca', 'none'"),
    ("cifar10-table", "lam", math.nan, "a number >= 0"),
    ("cifar10-table", "lr", 0, "a number > 0"),
    ("cifar10-table", "momentum", 1, "a number in [0, 1)"),
    ("cifar10-table", "soft", 0, "None (binary code) or a number > 0"),
    ("cifar10-table", "device", "gpu", "one of 'auto', 'cpu', 'cuda'"),
    ("ablations", "k", 0, "a number in (0, 1]"),
    ("ablations", "n_per_class", -1, "an int in [0, 5000]"),
    ("imagenet-table", "patch", 65, "an int in [1, 64]"),
    ("imagenet-table", "dataset", "imagenet", "'tiny-imagenet-100' or 'imagefolder:<path>'"),
    ("dimensionality", "k", 1, "an int >= 2"),
    ("dimensionality", "energy_tol", 1.0, "a number in (0, 1)"),
    ("scattering-vs-convnets", "mnist_J", 5, "an int in [1, 4]"),
    ("wavelets-and-scattering", "dilation", 1.0, "a number in [0, 1)"),
    ("data-overview", "seed", -1, "an int >= 0"),
    ("interactive-projections", "decoders", "huge", "one of 'smoke', 'laptop', 'paper'"),
]


@pytest.mark.parametrize("page, key, value, expected", PROBES)
def test_a_value_out_of_bounds_is_a_one_line_error(page, key, value, expected):
    with pytest.raises(profiles.ProfileError) as err:
        profiles.resolve(page, "smoke", {key: value})
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"{page}: parameter {key!r} = ")
    assert text.endswith(f"is out of bounds; expected {expected}")
    assert repr(value) in text or repr(float(value)) in text   # the value as read (ints of a float parameter: floats)


@pytest.mark.parametrize("page, key, value, where, expected", [
    ("ablations", "patch_values", [5, 100], "patch_values[1] = 100", "an int in [1, 32]"),
    ("ablations", "classifiers", ["linear", "bottleneck 0"], "classifiers[1] = 'bottleneck 0'",
     "'linear' or 'bottleneck <n>' (n >= 1)"),
    ("ablations", "lam_values", [], "'lam_values' = []", "a list of at least 1 element(s), each a number >= 0"),
    ("cifar10-table", "milestones", [0], "milestones[0] = 0", "an int >= 1"),
    ("cifar10-table", "rows", [{}, {"lam": -1}], "rows[1]['lam'] = -1", "a number >= 0"),
    ("cifar10-table", "rows", [{"epochs": 0, "milestones": [1]}], "rows[0]['epochs'] = 0", "an int >= 1"),
    ("dimensionality", "k_min", 500, "'k_min' = 500", "an int in [2, k = 100]"),
    ("dimensionality", "datasets", ["mnist"], "datasets[0] = 'mnist'", "one of 'cifar10', 'tiny-imagenet-100'"),
    ("dimensionality", "n_cov_images", {"cifar10": 0}, "n_cov_images['cifar10'] = 0",
     "None (every train image) or an int >= 1"),
    ("imagenet-table", "paper_runs", [{"name": "x", "whitening": "foo"}], "paper_runs[0]['whitening'] = 'foo'",
     "one of 'zca', 'pca', 'none'"),
    ("interactive-projections", "show_steps", [1, 3], "show_steps[1] = 3", "an int in [1, n_steps = 2]"),
    ("monet-comparisons", "gatys", {"n_iter": 0}, "gatys['n_iter'] = 0", "an int >= 1"),
    ("monet-comparisons", "pairs", ["rouen-facade-sunset", "no-such-pair"], "pairs[1] = 'no-such-pair'",
     "one of " + ", ".join(repr(p) for p in style_pairs.load())),
    ("style-transfer-methods", "photo", "../../etc/passwd", "'photo' = '../../etc/passwd'",
     "a relative path of a file under photos/"),
    ("style-transfer-methods", "methods", ["gatys", "picasso"], "methods[1] = 'picasso'",
     "one of 'gatys', 'strotss', 'adain', 'wct', 'mst', 'magenta'"),
])
def test_elements_and_fields_are_checked_one_by_one(page, key, value, where, expected):
    with pytest.raises(profiles.ProfileError) as err:
        profiles.resolve(page, "smoke", {key: value})
    assert str(err.value) == f"{page}: parameter {where} is out of bounds; expected {expected}"


def test_unknown_keys_of_rows_and_keyword_dicts_are_named():
    with pytest.raises(profiles.ProfileError, match=r"parameter rows\[0\] = .*keys among .*\(not 'n_atom'\)"):
        profiles.resolve("cifar10-table", "smoke", {"rows": [{"n_atom": 16}]})
    with pytest.raises(profiles.ProfileError, match=r"parameter 'gatys' = .*keys among .*\(not 'niter'\)"):
        profiles.resolve("monet-comparisons", "smoke", {"gatys": {"niter": 3}})
    with pytest.raises(profiles.ProfileError, match=r"parameter rows\[0\] = .*\(not 'rows'\)"):  # rows do not nest
        profiles.resolve("cifar10-table", "smoke", {"rows": [{"rows": []}]})


def test_values_inside_the_bounds_pass():
    p = profiles.resolve("cifar10-table", "smoke", {"lam": 0, "k": 1.0, "patch": 32, "whitening": "pca",
                                                      "soft": 2.5, "milestones": [], "rows": [{"lam": 1e-2}]})
    assert (p.lam, p.k, p.patch, p.whitening, p.soft) == (0.0, 1.0, 32, "pca", 2.5)
    p = profiles.resolve("dimensionality", "smoke", {"k_min": 100, "n_database": None})
    assert p.k_min == p.k == 100
    p = profiles.resolve("imagenet-table", "smoke", {"dataset": "imagefolder:/data/imagenet64"})
    assert p.dataset == "imagefolder:/data/imagenet64"


# ------------------------------------------------------- the command line ----

@pytest.fixture
def no_kernel(monkeypatch):
    """papermill's executor replaced by one that fails the test: nothing may start."""
    import papermill

    def execute_notebook(*args, **kwargs):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)


@pytest.mark.parametrize("name, value, expected", [
    ("n_atoms", "-5", "parameter 'n_atoms' = -5 is out of bounds; expected an int >= 1"),
    ("k", "2", "parameter 'k' = 2.0 is out of bounds; expected a number in (0, 1]"),
    ("lam", "-1", "parameter 'lam' = -1.0 is out of bounds; expected a number >= 0"),
    ("epochs", "-3", "parameter 'epochs' = -3 is out of bounds; expected an int >= 1"),
    ("patch", "100", "parameter 'patch' = 100 is out of bounds; expected an int in [1, 32]"),
    ("whitening", "foo", "parameter 'whitening' = 'foo' is out of bounds; expected one of 'zca', 'pca', 'none'"),
])
def test_cli_refuses_values_out_of_bounds_before_any_kernel(name, value, expected, no_kernel, tmp_results,
                                                            capsys):
    rc = main(["run", "cifar10-table", "--profile", "smoke", "-p", name, value])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == f"error: cifar10-table: {expected}\n"


def test_cli_keeps_the_other_one_line_errors(no_kernel, tmp_results, capsys):
    for argv, match in [(["run", "no-such-page"], "Unknown notebook 'no-such-page'"),
                        (["run", "cifar10-table", "-p", "lamb", "1"], "unknown parameter 'lamb'"),
                        (["run", "cifar10-table", "-p", "epochs", "many"], "expects a int")]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and match in err


# ------------------------------------------------------------- the bounds ----

CTX = Context({"k": 10, "n": None}, {})


def _expected(bound, value, ctx=CTX):
    problem = bound.problem(value, ctx)
    return None if problem is None else problem[2]


@pytest.mark.parametrize("bound, inside, outside, expected", [
    (Int(1), [1, 10**9], [0, -5, 1.0, True, "3", None], "an int >= 1"),
    (Int(0, 4), [0, 4], [-1, 5], "an int in [0, 4]"),
    (Int(2, "k"), [2, 10], [1, 11], "an int in [2, k = 10]"),
    (Real(0), [0, 0.0, 3, 1e300], [-1e-300, math.nan, math.inf, False, "1"], "a number >= 0"),
    (Real(0, 1, lo_open=True), [1e-9, 1.0], [0.0, 1.0001], "a number in (0, 1]"),
    (Real(0, 1, hi_open=True), [0.0, 0.999], [1.0, -0.1], "a number in [0, 1)"),
    (Real(hi=5), [-3, 5], [5.5, -math.inf], "a number <= 5"),
    (Real(), [0.0, -1e30], [math.nan, math.inf], "a finite number"),
    (Choice(1, 2), [1, 2], [True, 1.0, 3, "1"], "one of 1, 2"),
    (Flag(), [True, False], [0, 1, "true"], "one of True, False"),
    (Text(), ["a"], ["", 3, None], "a non-empty string"),
    (DataFile(), ["a.jpg", "monet/x y.jpg", "a..b.jpg"], ["/etc/passwd", "../a.jpg", "a/../../b", "", "..", 3],
     "a relative path of a file under the data root"),
    (OrNone(Int(1), "all"), [None, 3], [0, "x"], "None (all) or an int >= 1"),
    (ListOf(Int(1), min_len=0), [[], [1, 2], (3,)], ["1", 1, None], "a list of at least 0 element(s), each an int >= 1"),
    (ListOf(Int(1), min_len=2, max_len=3), [[1, 2], [1, 2, 3]], [[1], [1, 2, 3, 4]],
     "a list of 2 to 3 element(s), each an int >= 1"),
    (Keys(n=Int(1)), [{}, {"n": 1}], [[], None], "a dict with keys among ['n']"),
])
def test_bounds_accept_inside_and_refuse_outside(bound, inside, outside, expected):
    for v in inside:
        assert bound.problem(v, CTX) is None, v
    for v in outside:
        assert _expected(bound, v) == expected, v


def test_list_and_dict_problems_say_where():
    assert ListOf(Int(1)).problem([3, 0, -1], CTX) == ("[1]", 0, "an int >= 1")
    assert ListOf(ListOf(Int(1))).problem([[1], [2, 0]], CTX) == ("[1][1]", 0, "an int >= 1")
    assert Keys(n=Int(1), s=Text()).problem({"n": 2, "s": ""}, CTX) == ("['s']", "", "a non-empty string")
    assert OrNone(ListOf(Int(1))).problem([0], CTX) == ("[0]", 0, "an int >= 1")


def test_a_row_is_read_with_its_own_changes():
    page = {"k": Int(1), "k_min": Int(1, "k"), "name": Text(), "rows": ListOf(Overrides(tag=Text()))}
    ctx = Context({"k": 5, "k_min": 2}, page)
    rows = page["rows"]
    assert rows.problem([{"k": 50, "k_min": 20}, {"tag": "x"}], ctx) is None   # k_min <= the row's k
    assert rows.problem([{"k_min": 20}], ctx) == ("[0]['k_min']", 20, "an int in [1, k = 5]")
    assert rows.problem([{"tag": ""}], ctx) == ("[0]['tag']", "", "a non-empty string")
    where, value, expected = rows.problem([{"rows": []}], ctx)
    assert (where, value) == ("[0]", {"rows": []}) and "(not 'rows')" in expected
