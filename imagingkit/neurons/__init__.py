"""Neuron and small-process ROIs: detection engines, extraction, dF/F, deconvolution, classification.

Main entry points: :func:`detect_rois` (engines "builtin" and "suite2p") returning a
:class:`RoiSet`, and :func:`extract_traces` returning :class:`Traces`
(F, Fneu, dff, spikes, time_s). Files: ``rois.csv``, ``roi_labels.tif``,
``traces.npz`` (:mod:`imagingkit.neurons.io`); suite2p folders and ImageJ ROI
sets via :mod:`imagingkit.neurons.interop`.
"""

from imagingkit.neurons.classify import classify_rois, fit_classifier, roi_features
from imagingkit.neurons.detect import detect_rois
from imagingkit.neurons.extract import Traces, extract_traces, neuropil_masks
from imagingkit.neurons.io import read_traces, write_results
from imagingkit.neurons.params import DetectionParams, ExtractionParams
from imagingkit.neurons.roiset import RoiSet

__all__ = [
    "DetectionParams",
    "ExtractionParams",
    "RoiSet",
    "Traces",
    "classify_rois",
    "detect_rois",
    "extract_traces",
    "fit_classifier",
    "neuropil_masks",
    "read_traces",
    "roi_features",
    "write_results",
]
