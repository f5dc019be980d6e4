"""lowlight-bench engine: data, metrics, profiling, training, evaluation, tables and report.

Method-agnostic: methods are reached only through the registry in :mod:`methods`.
"""

__version__ = "0.1.0"
