"""The counter generator and the frozen random synthesis network are pinned and portable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lotto_media.model.config import ModelConfig
from lotto_media.errors import InputError
from lotto_media.model.fixedpoint import cos_fixed, exp_neg_fixed
from lotto_media.model.random_weights import (
    BASIS_ROWS,
    WEIGHT_FRAC,
    fourier_basis,
    random_synthesis_weights,
    weights_as_float,
    weights_digest,
)
from lotto_media.model.rng import GOLDEN_GAMMA, mix64, mix64_array, uniform_int, uniform_u32

REPO_ROOT = Path(__file__).resolve().parents[1]

# These digests ARE the format: the decoder regenerates the random network from the seed, so a
# stream encoded by one version decodes correctly with another only if these stay identical.
# If a change to rng.py, fixedpoint.py or random_weights.py alters them, that is a format break:
# bump the format version in docs/FORMAT.md instead of updating the numbers here.
PINNED_DIGESTS = {
    0: "fc53e1115ce9ee4beb899246723338fea95d0bb7a2c3ac58528e2e8bebdb730a",
    123456789: "9ef1d776524ee29b6bd695fbd4b6c7882561b194a692b4dec055c8d09428530b",
}
WIDE = ModelConfig(synth_widths=(128, 128, 128))


# --- rng -----------------------------------------------------------------------------------


def test_mix64_is_splitmix64() -> None:
    # Published SplitMix64 outputs for state 0: the generator is the real thing, not a look-alike.
    expected = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    states = [(k * GOLDEN_GAMMA) % 2**64 for k in (1, 2, 3)]
    assert [mix64(s) for s in states] == expected
    assert [int(v) for v in mix64_array(np.array(states, dtype=np.uint64))] == expected


def test_uniform_u32_pinned_and_random_access() -> None:
    # Pinned like the digests above: changing these values is a format break.
    assert uniform_u32(0, 0, 4).tolist() == [3177825302, 1392203029, 888143004, 2403975424]
    long = uniform_u32(2**64 - 1, 7, 1000)
    assert long.dtype == np.uint32
    np.testing.assert_array_equal(uniform_u32(2**64 - 1, 7, 10), long[:10])
    assert not np.array_equal(uniform_u32(2**64 - 1, 8, 1000), long)  # streams differ
    assert not np.array_equal(uniform_u32(2**64 - 2, 7, 1000), long)  # seeds differ
    assert uniform_u32(5, 0, 0).shape == (0,)


def test_uniform_int_range_and_balance() -> None:
    values = uniform_int(42, 3, 60_000, -3, 4)
    assert values.dtype == np.int64
    assert values.min() == -3 and values.max() == 3
    counts = np.bincount(values + 3)
    assert np.all(np.abs(counts - 60_000 / 7) < 400)  # ~ 5 sigma of a fair 7-sided die
    wide = uniform_int(42, 4, 20_000, -32767, 32768)
    assert abs(wide.mean()) < 700 and -32767 <= wide.min() and wide.max() <= 32767


def test_rng_rejects_bad_arguments() -> None:
    with pytest.raises(InputError):
        uniform_u32(-1, 0, 3)
    with pytest.raises(InputError):
        uniform_u32(2**64, 0, 3)
    with pytest.raises(ValueError):
        uniform_int(0, 0, 3, 5, 5)


# --- random network ------------------------------------------------------------------------


def test_shapes_reference_and_wide() -> None:
    reference = random_synthesis_weights(ModelConfig())
    assert [w.shape for w in reference] == [(32, 2), (24, 38), (16, 33), (3, 73)]
    assert sum(w.size for w in reference) == 1723
    assert all(w.dtype == np.int64 for w in reference)
    wide = random_synthesis_weights(WIDE)
    assert [w.shape for w in wide] == [(128, 2), (128, 134), (128, 137), (3, 185)]
    grey = random_synthesis_weights(ModelConfig(out_channels=1, mod_hidden=8))
    assert [w.shape for w in grey] == [(32, 2), (24, 38), (16, 33), (1, 33)]


@pytest.mark.parametrize("seed", sorted(PINNED_DIGESTS))
def test_pinned_digest(seed: int) -> None:
    assert weights_digest(ModelConfig(seed=seed)) == PINNED_DIGESTS[seed]


def test_seeds_differ_and_mask_ratio_is_irrelevant() -> None:
    a = random_synthesis_weights(ModelConfig(seed=1))
    b = random_synthesis_weights(ModelConfig(seed=2))
    for wa, wb in zip(a, b):
        assert np.mean(wa != wb) > 0.9
    pruned = ModelConfig(seed=1, mask_ratio=0.85, n_levels=5, arm_hidden=8)
    for wa, wp in zip(a, random_synthesis_weights(pruned)):
        np.testing.assert_array_equal(wa, wp)
    assert weights_digest(ModelConfig(seed=1)) == weights_digest(pruned)


@pytest.mark.parametrize("config", [ModelConfig(seed=9), WIDE], ids=["reference", "wide"])
def test_he_standard_deviation_and_no_zero_weights(config: ModelConfig) -> None:
    weights = random_synthesis_weights(config)
    for layer, real, (_, fan_in) in zip(weights, weights_as_float(weights), config.synth_layer_shapes()):
        assert np.all(layer != 0), "a zero weight is a connection the mask could never enable"
        target = np.sqrt(2.0 / fan_in)
        assert abs(real.std() / target - 1) < 0.10, (layer.shape, real.std(), target)
        np.testing.assert_array_equal(real * (1 << WEIGHT_FRAC), layer)  # float copy is exact


def test_fourier_basis_is_the_sampled_cosines() -> None:
    fan_in = 9
    basis = fourier_basis(fan_in)
    assert basis.shape == (BASIS_ROWS, fan_in)
    t = np.linspace(-1.0, 1.0, fan_in)
    low = np.arange(1, 65) * fan_in / 1024.0  # turns per unit t
    high = (64 + 3 * np.arange(1, 65)) * fan_in / 1024.0
    nu = np.concatenate([low, high])
    phi = np.arange(32) / 32.0
    turns = nu[:, None, None] * t[None, None, :] + phi[None, :, None]
    expected = (np.cos(2 * np.pi * turns) * 2**14).reshape(BASIS_ROWS, fan_in)
    # Phases are rounded to 2^-16 turn (<= 2*pi*2^-17 rad, ~1 unit at 2^14) plus cos_fixed's +-2.
    assert np.abs(basis - expected).max() <= 4
    assert np.array_equal(fourier_basis(1)[:32, 0], np.round(np.cos(2 * np.pi * phi) * 2**14))


FEATURE_PROBE = r"""
import json, sys, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import numpy as np
try:
    from numpy._core._multiarray_umath import __cpu_features__
except ImportError:
    from numpy.core._multiarray_umath import __cpu_features__
requested = json.loads(sys.argv[1])
report = {
    "still_enabled": [f for f in requested if __cpu_features__.get(f)],
    "warnings": [str(w.message) for w in caught],
}
"""

# The modules under test need only numpy and lotto_media.model.config/errors. Registering a bare package
# object lets the child import them without running lotto_media/__init__.py, which pulls in torch
# and would add seconds to the test for nothing it checks.
RESULT_PROBE = r"""
import types
package = types.ModuleType("lotto_media")
package.__path__ = [sys.argv[2]]
sys.modules["lotto_media"] = package
from lotto_media.model.config import ModelConfig
from lotto_media.model.fixedpoint import cos_fixed, exp_neg_fixed
from lotto_media.model.random_weights import weights_digest
report["digests"] = {str(s): weights_digest(ModelConfig(seed=s)) for s in json.loads(sys.argv[3])}
report["cos"] = cos_fixed(np.arange(-70000, 70000, 7), 16, 14).tolist()
report["exp"] = exp_neg_fixed(np.arange(0, 1 << 20, 3), 14, 30).tolist()
"""


def _run_probe(disabled: list[str], compute: bool) -> dict | None:
    """Run a child with these features disabled and OMP_NUM_THREADS=1; None if it failed."""
    env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=",".join(disabled), OMP_NUM_THREADS="1")
    code = FEATURE_PROBE + (RESULT_PROBE if compute else "") + "\nprint(json.dumps(report))\n"
    args = [json.dumps(disabled), str(REPO_ROOT / "lotto_media"), json.dumps(sorted(PINNED_DIGESTS))]
    child = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120
    )
    if compute:
        assert child.returncode == 0, child.stderr
    return json.loads(child.stdout) if child.returncode == 0 else None


def _disableable_features() -> list[str]:
    """The SIMD features this CPU has, beyond numpy's baseline, that numpy agrees to disable.

    Candidates are the features reported True and not in the baseline. numpy only disables its
    dispatch targets (it warns about other names and aborts on baseline ones), so when it lists
    them we keep to those. Then we try: the candidates go to one child together, and whatever it
    still reports enabled is dropped; if that child cannot start, we try one feature at a time.
    """
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # numpy < 2
        from numpy.core import _multiarray_umath as umath
    baseline = set(getattr(umath, "__cpu_baseline__", []))
    candidates = [f for f, on in umath.__cpu_features__.items() if on and f not in baseline]
    dispatch = getattr(umath, "__cpu_dispatch__", None)
    if dispatch is not None:
        candidates = [f for f in candidates if f in set(dispatch)]
    together = _run_probe(candidates, compute=False)
    if together is not None:
        return [f for f in candidates if f not in together["still_enabled"]]
    working = []
    for feature in candidates:
        alone = _run_probe([feature], compute=False)
        if alone is not None and not alone["still_enabled"]:
            working.append(feature)
    return working


def test_same_results_without_simd_and_single_threaded() -> None:
    disabled = _disableable_features()
    report = _run_probe(disabled, compute=True)
    assert report["still_enabled"] == [], f"numpy kept {report['still_enabled']} enabled"
    assert not any("NPY_DISABLE_CPU_FEATURES" in w for w in report["warnings"]), report["warnings"]
    assert report["digests"] == {str(s): d for s, d in PINNED_DIGESTS.items()}
    assert report["cos"] == cos_fixed(np.arange(-70000, 70000, 7), 16, 14).tolist()
    assert report["exp"] == exp_neg_fixed(np.arange(0, 1 << 20, 3), 14, 30).tolist()
