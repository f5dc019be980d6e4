"""The project's vocabulary, written once: tasks, dataset kinds and metrics.

Everything that names a dataset kind or a metric reads it from here: the loaders (folders), the method
registry (which kinds a task is evaluated on, which kinds a method may train on), the evaluator, the
tables and the report (labels, direction, decimals, primary or secondary). The config schema's enums
are checked against it (tests/test_vocabulary.py). Columns of a method's own published protocol are
declared by the method (``Method.extra_columns``), next to the code that computes them.
"""

from __future__ import annotations

from dataclasses import dataclass

#: task -> title of its report section (DESIGN.md ▶ Datasets)
TASKS: dict[str, str] = {
    "enhance": "Low-light enhancement",
    "raw": "Raw low-light enhancement (SID protocol, raw → sRGB)",
    "denoise": "Real-world denoising (self-supervised)",
}


@dataclass(frozen=True)
class DatasetKind:
    """A canonical dataset layout: ``<root>/<split>/<input_dir>/`` (+ ``<target_dir>/`` when paired)."""

    name: str
    task: str
    input_dir: str
    target_dir: str | None
    doc: str


KINDS: dict[str, DatasetKind] = {
    k.name: k
    for k in (
        DatasetKind("paired", "enhance", "low", "high", "low/normal-light pairs (LOL, LOL-v2, LSRW)"),
        DatasetKind("unpaired", "enhance", "low", None, "low-light images without targets (DICM, LIME, NPE): NIQE"),
        DatasetKind("denoise", "denoise", "noisy", "clean", "real noisy/clean sRGB pairs (SIDD)"),
        DatasetKind("raw", "raw", "Sony/short", "Sony/long", "SID Sony raw short/long exposures"),
    )
}

#: a method's ``train_data`` -> the dataset kinds it can train on (``none``: a baseline that never trains)
TRAIN_DATA: dict[str, tuple[str, ...]] = {
    "low": ("paired", "unpaired"),  # low-light images only (SCI); pairs are used for their inputs
    "paired": ("paired",),
    "unpaired": ("paired", "unpaired"),  # two unpaired sets (EnlightenGAN); a paired set's targets shuffled
    "noisy": ("denoise",),  # noisy images only (blind-spot self-supervision)
    "raw": ("raw",),
    "none": (),
}


def task_kinds(task: str) -> tuple[str, ...]:
    """The dataset kinds a method of ``task`` is evaluated on."""
    return tuple(k.name for k in KINDS.values() if k.task == task)


@dataclass(frozen=True)
class Metric:
    """One table column: how it is labelled, which way is better, how it is rounded, what it measures."""

    key: str
    label: str
    higher_better: bool
    decimals: int
    protocol: str
    primary: bool = False  # a column of every table (else a secondary protocol column)
    needs_target: bool = True


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric(
            "psnr",
            "PSNR (dB)",
            True,
            2,
            "RGB, 8-bit output vs 8-bit target, data range 255, no border crop, float64, "
            "capped at 100 dB (identical images)",
            primary=True,
        ),
        Metric(
            "ssim",
            "SSIM",
            True,
            4,
            "Wang et al. (MATLAB ssim_index): Gaussian 11x11 sigma 1.5, K1 0.01, K2 0.03, 'valid' "
            "region, per RGB channel then averaged, no downsampling (scikit-image implementation)",
            primary=True,
        ),
        Metric(
            "niqe",
            "NIQE",
            False,
            3,
            "pyiqa 'niqe' with LIVE's pristine parameters (modelparameters.mat), YIQ-Y luma, "
            "96x96 blocks, float64, offline; undefined below two 96x96 blocks",
            primary=True,
            needs_target=False,
        ),
        Metric(
            "psnr_gtmean",
            "PSNR GT-mean (dB)",
            True,
            2,
            "PSNR after scaling the output to the target's mean gray level (KinD/LLFlow/"
            "Retinexformer 'GT-mean'; uses the ground truth), re-quantized to 8 bit",
        ),
        Metric(
            "ssim_gtmean",
            "SSIM GT-mean",
            True,
            4,
            "SSIM after the GT-mean scaling (uses the ground truth), re-quantized to 8 bit",
        ),
    )
}

#: the columns of every table, in table order
PRIMARY: tuple[str, ...] = tuple(k for k, m in METRICS.items() if m.primary)


def metric(key: str) -> Metric:
    """The :class:`Metric` called ``key``: a canonical one, or a column some method declares.

    Raises ``KeyError`` naming the column when nobody declares it.
    """
    if key in METRICS:
        return METRICS[key]
    import methods

    for name in methods.names():
        declared = methods.get(name).extra_columns
        if key in declared:
            return declared[key]
    raise KeyError(
        f"metric column {key!r} is not declared: not one of {', '.join(METRICS)} and no method's extra_columns"
    )


def order_columns(keys) -> list[str]:
    """Primary metrics first (table order), then the others alphabetically."""
    keys = list(keys)
    return [*[p for p in PRIMARY if p in keys], *sorted(k for k in keys if k not in PRIMARY)]
