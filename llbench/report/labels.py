"""What only the report names: the real datasets paper numbers may apply to, the cost columns, the tiny-data note.

Tasks, dataset kinds and metrics are the project's vocabulary (:mod:`llbench.vocabulary`).
"""

#: datasets paper numbers may apply to (the names `llbench data prepare` and config/config.yaml use)
REAL_DATASETS = (
    "lol",
    "lolv2-real",
    "lolv2-syn",
    "lsrw",
    "sidd",
    "sid",
    "dnd",
    "mit",
    "dicm",
    "lime",
    "npe",
    "mef",
    "vv",
)
COST_REF_LABELS = {"params": "params", "gmacs": "GMACs (1e9)", "macs_gib": "GMACs (2^30)", "gflops": "GFLOPs"}
#: cost columns: key -> (label, format, what it is)
COST = {
    "params": ("params", "int", "trainable and buffer-free parameters of the inference network"),
    "gflops": ("GFLOPs @256²", "sig", "true FLOPs (torch FlopCounterMode, attention counted) at 256×256, 1e9 units"),
    "gflops_native": ("GFLOPs @native", "sig", "true FLOPs at the dataset's native test size"),
    "latency_ms": ("latency (ms) @256²", "sig", "median of repeats after warm-up, batch 1, device synchronised"),
    "peak_mem_mb": ("peak mem (MB) @256²", "sig", "peak memory of one inference at 256×256"),
}
TINY_NOTE = (
    "Tiny datasets (config key tiny) are generated smoke-test data (a few synthetic images degraded from scikit-image "
    "photographs): numbers on them test the pipeline, not the methods, so paper numbers are never "
    "compared to them."
)
