"""The whole study of the method's paper on one or two cohorts (``nehmap study``)."""

from nehmap.study.config import TEMPLATE, StudyConfig
from nehmap.study.pipeline import STEPS, StudyResult, run_study

__all__ = ["STEPS", "TEMPLATE", "StudyConfig", "StudyResult", "run_study"]
