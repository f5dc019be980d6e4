"""Image-quality metrics of the canonical protocol (DESIGN.md ▶ Metrics protocol).

Every metric reads the saved 8-bit output and the 8-bit target (``HxWx3`` uint8, RGB):

* PSNR on RGB, data range 255, no border crop, float64 (BasicSR ``calculate_psnr`` convention,
  XPixelGroup/BasicSR@8d56e3a ``basicsr/metrics/psnr_ssim.py``);
* SSIM as Wang et al.'s MATLAB ``ssim_index.m``: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03,
  'valid' region, computed per RGB channel and averaged, no automatic downsampling;
* NIQE with LIVE's pristine parameters (``metrics_data/niqe/modelparameters.mat``, LIVE notice beside it),
  computed by pyiqa (chaofengc/IQA-PyTorch, wheel 0.1.16, PolyForm-Noncommercial-1.0.0) fully offline;
* LOL's "GT-mean" variant (:func:`gt_mean`), a secondary column.

Calibration (``tests/test_metrics.py``) against pyiqa 0.1.16's ``ResultsCalibra`` (5 TID2013 pairs):
PSNR matches the published values (scikit-image, RGB) to their 2 decimals; SSIM on MATLAB ``rgb2gray``
luma matches MATLAB's ``ssim.m`` to its 4 decimals; NIQE (computed in float64, like MATLAB) is within 6 %
of MATLAB's ``computequality.m`` (pyiqa's port differs by up to 5.1 %, image I19) and within 0.03 of pyiqa's
published float32 values, whose AGGD grid search moves by up to 5e-3 under a 1-ulp input change.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llbench.vocabulary import METRICS, PRIMARY
from methods.base import PSNR_CAP_DB, cap_psnr

__all__ = [
    "NIQE_BLOCK",
    "NIQE_PARAMS",
    "NIQE_PARAMS_SHA256",
    "PROTOCOL",
    "bootstrap_ci",
    "gt_mean",
    "niqe",
    "niqe_params_sha256",
    "psnr",
    "rgb2gray",
    "ssim",
    "to_uint8",
]

#: LIVE niqe_release pristine model (mu_prisparam 1x36, cov_prisparam 36x36), LIVE's notice beside it
NIQE_PARAMS = Path(__file__).resolve().parent / "metrics_data" / "niqe" / "modelparameters.mat"
NIQE_PARAMS_SHA256 = "fa2aa4d12dd9595c3fb6bf8b4e1a15c79d5d1469238d0901c88dead195be578d"
#: NIQE block size (LIVE computequality.m blocksizerow/col = 96; pyiqa niqe_arch.niqe block_size_h/w = 96)
NIQE_BLOCK = 96

_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma, R G B
# MATLAB rgb2gray = first row of inv(rgb2ntsc matrix), as printed in MATLAB's rgb2gray documentation
_MATLAB_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


# ---- conversion ------------------------------------------------------------------------------
def _round_half_up(x: np.ndarray) -> np.ndarray:
    """Round non-negative values half up (MATLAB ``uint8()`` / ``im2uint8``), not NumPy's half-to-even."""
    return np.floor(x + 0.5)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Quantize an RGB tensor in [0, 1] to an ``HxWx3`` uint8 array: clamp, x255, round half up.

    Args:
        x: ``(3, H, W)`` or ``(1, 3, H, W)`` tensor on any device and dtype.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"to_uint8 expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"to_uint8 expects (3, H, W) or (1, 3, H, W), got shape {tuple(x.shape)}")
    v = x.detach().to("cpu", torch.float64).clamp(0.0, 1.0).permute(1, 2, 0).numpy() * 255.0
    return _round_half_up(v).astype(np.uint8)


def rgb2gray(img: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` of an ``HxWx3`` uint8 image: the weighted sum rounded back to uint8 (``HxW``).

    Used for calibration only: pyiqa's ResultsCalibra ran MATLAB's SSIM/NIQE scripts on ``rgb2gray`` input.
    """
    _check_u8(img, "img", channels=(3,))
    return _round_half_up(img.astype(np.float64) @ _MATLAB_RGB2GRAY).clip(0, 255).astype(np.uint8)


def _check_u8(img: Any, name: str, channels: Sequence[int] = (3,)) -> None:
    if not isinstance(img, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 (the saved 8-bit image), got dtype {img.dtype}")
    ok = (img.ndim == 3 and img.shape[2] in channels) or (img.ndim == 2 and 1 in channels)
    if not ok:
        raise ValueError(f"{name} must be HxWx3 (or HxW where allowed) uint8, got shape {img.shape}")


def _check_pair(out: np.ndarray, target: np.ndarray, channels: Sequence[int] = (3,)) -> None:
    _check_u8(out, "out", channels)
    _check_u8(target, "target", channels)
    if out.shape != target.shape:
        raise ValueError(f"out and target shapes differ: {out.shape} vs {target.shape}")


# ---- full-reference metrics ------------------------------------------------------------------
def psnr(out: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB over all RGB values (data range 255, no crop, float64), capped at
    :data:`~methods.base.PSNR_CAP_DB` (100 dB; identical images), so no image drops out of the mean."""
    _check_pair(out, target)
    mse = np.mean((out.astype(np.float64) - target.astype(np.float64)) ** 2)
    if mse == 0:
        return PSNR_CAP_DB
    return cap_psnr(10.0 * np.log10(255.0**2 / mse))


def ssim(out: np.ndarray, target: np.ndarray) -> float:
    """SSIM as Wang et al.'s MATLAB ``ssim_index.m``, per channel then averaged.

    Gaussian 11x11 window with sigma 1.5, K1 0.01, K2 0.03, L 255, population (not sample) covariances,
    mean over the 'valid' region. Computed with :func:`skimage.metrics.structural_similarity`
    (``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255``): its Gaussian has
    radius ``int(3.5 * 1.5 + 0.5) = 5`` (11 taps, the same normalised kernel as ``fspecial('gaussian',
    11, 1.5)``), and it averages the map after cropping ``(11 - 1) // 2 = 5`` pixels per side, which keeps
    exactly the positions where the window lies inside the image, i.e. MATLAB's ``filter2(..., 'valid')``
    (pinned against a direct 'valid' correlation in the tests).

    Args:
        out, target: ``HxWx3`` uint8 RGB (per-channel SSIM, averaged) or ``HxW`` uint8 (one channel, e.g.
            luma for calibration). Both sides must be at least 11 pixels.
    """
    from skimage.metrics import structural_similarity

    _check_pair(out, target, channels=(1, 3))
    if min(out.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {out.shape[:2]}")
    kw: dict[str, Any] = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    if out.ndim == 3:
        kw["channel_axis"] = -1
    return float(structural_similarity(out, target, **kw))


def gt_mean(out: np.ndarray, target: np.ndarray) -> np.ndarray:
    """LOL's "GT-mean" correction: scale ``out`` so its mean gray level equals the target's.

    ``out * mean_gray(target) / mean_gray(out)``, clipped to [0, 255] and re-quantized to uint8 (round
    half up), with gray = 0.299 R + 0.587 G + 0.114 B. The convention of KinD (zhangyhuaee/KinD
    ``evaluate_LOLdataset.py``), LLFlow (wyf0912/LLFlow ``code/test.py``) and Retinexformer
    (caiyuanhao1998/Retinexformer ``Enhancement/test_from_dataset.py`` ``--GT_mean``). Retinexformer calls
    ``cv2.COLOR_BGR2GRAY`` on RGB images, which swaps the R and B weights; we use the correct weights.
    Retinexformer rescales its float output before quantization; we rescale the saved 8-bit output (the
    protocol scores saved images). GT-informed, so it is a secondary column ("psnr_gtmean", "ssim_gtmean").
    An all-black ``out`` is returned unchanged (any scale of zero is zero).
    """
    _check_pair(out, target)
    mean_out = float((out.astype(np.float64) @ _GRAY_WEIGHTS).mean())
    mean_target = float((target.astype(np.float64) @ _GRAY_WEIGHTS).mean())
    if mean_out == 0.0:
        return out.copy()
    scaled = out.astype(np.float64) * (mean_target / mean_out)
    return _round_half_up(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


# ---- NIQE (pyiqa, offline) -------------------------------------------------------------------
_NIQE_CACHE: dict[tuple[str, str], Any] = {}  # (parameter file, device) -> pyiqa metric object


def niqe_params_sha256(path: Path | str = NIQE_PARAMS) -> str:
    """sha256 of the NIQE parameter file (recorded in metrics.json for provenance)."""
    from llbench.data.manifest import sha256_file

    return sha256_file(Path(path))


def _niqe_metric(device: str) -> Any:
    """The cached ``pyiqa.create_metric("niqe", pretrained_model_path=<LIVE .mat>)``; imports pyiqa lazily."""
    key = (str(NIQE_PARAMS), str(device))
    if key not in _NIQE_CACHE:
        digest = niqe_params_sha256(NIQE_PARAMS)
        if digest != NIQE_PARAMS_SHA256:
            raise ValueError(f"NIQE parameter file {NIQE_PARAMS} has sha256 {digest}, expected {NIQE_PARAMS_SHA256}")
        import pyiqa  # ~3 s; only here so that metric-free jobs stay fast

        # create_metric(**kw) -> InferenceModel -> net_opts.update(kw) -> NIQE(pretrained_model_path=...),
        # which loads the .mat and skips load_file_from_url (pyiqa archs/niqe_arch.py NIQE.__init__).
        _NIQE_CACHE[key] = pyiqa.create_metric(
            "niqe", pretrained_model_path=str(NIQE_PARAMS), device=torch.device(device)
        )
    return _NIQE_CACHE[key]


def niqe(out: np.ndarray, device: str = "cpu") -> float:
    """NIQE (lower is better) of an ``HxWx3`` (or ``HxW`` gray) uint8 image with LIVE's pristine model.

    pyiqa's default ``niqe``: luma = YIQ Y (the 0.299/0.587/0.114 weights of MATLAB ``rgb2gray`` to 1e-4),
    rounded, 96x96 non-overlapping blocks (partial blocks dropped), two scales. Never touches the network.

    Raises:
        ValueError: when the image holds fewer than two complete 96x96 blocks. Below 96 pixels on a side
            there is no block (pyiqa fails); with exactly one block the covariance across blocks is
            undefined (MATLAB's nanmean/nancov treat a single 1x36 row as one vector, so LIVE's
            ``computequality.m`` no longer computes NIQE; pyiqa returns a value from a degenerate
            covariance). Also when the block statistics are not finite (e.g. a constant image).
            The evaluator records the metric as not applicable for that image.
    """
    _check_u8(out, "out", channels=(1, 3))
    h, w = out.shape[:2]
    blocks = (h // NIQE_BLOCK) * (w // NIQE_BLOCK)
    if blocks < 2:
        raise ValueError(
            f"NIQE needs at least two complete {NIQE_BLOCK}x{NIQE_BLOCK} blocks (e.g. 96x192); "
            f"image of {h}x{w} pixels has {blocks}"
        )
    # float64: pyiqa's AGGD fit picks alpha by argmin over a 0.001 grid; in float32 a 1-ulp change of the
    # input moves NIQE of calibration image I03 by 5e-3 (one grid step), and other CPUs' vector code sums
    # in another order (15.6558 on AMD EPYC, pyiqa's published 15.6538). In float64 the same perturbation,
    # 1 vs 2 threads and AVX2 / AVX-512 / default kernels agree within 3e-12 (tests/test_metrics.py).
    x = torch.tensor(out, dtype=torch.float64) / 255.0
    x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]
    metric = _niqe_metric(device)
    try:
        with torch.inference_mode():
            value = float(metric(x.to(device)).reshape(-1)[0])
    except RuntimeError as e:  # torch.linalg errors: NaN block features, e.g. a flat (constant) output
        raise ValueError(f"NIQE undefined for this {h}x{w} image: {str(e).splitlines()[0]}") from None
    if not np.isfinite(value):
        raise ValueError(f"NIQE undefined for this {h}x{w} image (non-finite value {value})")
    return value


# ---- statistics ------------------------------------------------------------------------------
def bootstrap_ci(
    values: Sequence[float] | np.ndarray, n: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean; deterministic for a given ``seed``.

    Resamples the values with replacement ``n`` times (``numpy.random.default_rng(seed)``) and returns the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles (linear interpolation) of the resampled means.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("bootstrap_ci needs at least one value, got none")
    if not np.all(np.isfinite(v)):
        bad = int((~np.isfinite(v)).sum())
        raise ValueError(f"bootstrap_ci needs finite values; got {bad} non-finite of {v.size}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n, v.size))].mean(axis=1)
    low, high = np.percentile(means, [50.0 * (1.0 - level), 50.0 * (1.0 + level)])
    return float(low), float(high)


# ---- protocol ----------------------------------------------------------------------------------
#: the canonical protocol, written into every metrics.json
PROTOCOL: dict[str, Any] = {
    "inference": "native resolution; reflect-pad to the method's multiple and crop back; batch 1",
    "quantization": "clamp to [0, 1], x255, round half up, uint8; saved as PNG; metrics read the saved image",
    "color_space": "RGB",
    "crop_border": 0,
    **{key: METRICS[key].protocol for key in PRIMARY},
    "niqe_params": {
        "file": "llbench/metrics_data/niqe/modelparameters.mat",
        "sha256": NIQE_PARAMS_SHA256,
        "source": "LIVE niqe_release (UT Austin), notice in LIVE_readme.txt",
    },
    "gt_mean": "secondary columns psnr_gtmean/ssim_gtmean: out * mean_gray(target) / mean_gray(out), "
    "gray = 0.299 R + 0.587 G + 0.114 B",
    "bootstrap": "95% percentile bootstrap CI of the mean, 1000 resamples, seed 0",
}
