"""Batch pipeline: experiment config, resumable steps, executors, report and NWB export.

``run_experiment(config, run_dir)`` takes an experiment from raw files to
registered movies, ROIs and traces, stimulus responses, spines, tracks and
across-session summaries. Each step writes a documented folder with a
provenance record, so a re-run skips finished work and resumes after a crash.
"""

from imagingkit.pipeline.config import ExperimentConfig, SessionConfig, load_config, parse_config

__all__ = ["ExperimentConfig", "SessionConfig", "load_config", "parse_config"]
