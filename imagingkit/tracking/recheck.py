"""Check every absence of a track against the session's image before counting it.

A spine the detector missed in one session looks like a loss (or, in the first session, like
a later gain), and while it is missed the linker may hand its place to a neighbour; a spine
that was really lost and a new one that formed close by look like one spine missed once.
Positions alone cannot tell these apart, so the loss rule K
(:class:`~imagingkit.tracking.fates.FateParams`) guesses. With the images at hand the tracker
looks, as a human scorer does. The evidence for a spine at a position of a session's image
(:func:`evidence_map`, :func:`evidence_at`) is measured within ``search_um`` of it, as a
fraction of the detector's local threshold (higher on the shaft's flank,
:class:`imagingkit.spines.DetectParams`) of the residual over the shaft model, outside the
shaft core, in two ways: the light there (largest residual, ``evidence``) and the peaks
there (largest local maximum of the residual, ``peak_evidence``, :func:`peaks_only`). A
spine shows as a peak; the flank of a bright neighbour, a neck or a dendrite lying across
the place shows light but no peak of its own.

1. After a first linking, a detection far from where its track's other detections agree is
   cut out of the track (:func:`detach_outliers`: the neighbour's place taken).
2. Every session in which a track is in view but not detected is measured at the track's
   position (mean registered position, mapped into the session). A missed spine is re-found
   where a peak is ``>= min_evidence`` and ``>= relative_evidence`` times the peak evidence
   where the same track was detected, and the light at the place itself (:func:`place_map`)
   reaches ``min_place_evidence`` (:func:`judge_absences`). Only where the image re-finds
   spines clearly more often than it would by chance (:func:`refinding_pays`): in tables that
   miss nothing, a track's absence is the table's own verdict, and the rare peak of noise or
   of a neighbour's flank at a lost spine's place would only move its loss a session later.
3. Spines that no input table holds (a spine present in a single session and missed there
   has no track to look at) are discovered: the spine detector's own spines on each
   session's image (:func:`imagingkit.spines.detect_spines`) that lie farther than
   ``exclusion_um`` from every track's position in that session and show a clear peak,
   ``>= discover_min_evidence`` (:func:`discover_spines`; three times the detector's
   threshold: the detector's extra spines next to a tracked spine, a neck or a flank, mostly
   peak below it, the spines the input missed mostly far above). Only where the tables are
   clearly incomplete: at least ``discover_min_refound_fraction`` of the judged absences
   re-found (:func:`refound_fraction`), well above what chance peaks reach in complete
   tables, so a curated, complete table never gets spines added. 2D images only, unless
   ``discover_in_stacks``.
4. The re-found and discovered spines join the detections and everything is linked again, so
   a spine missed in some sessions keeps its identity and a neighbour cannot take its place;
   discovered spines are present rows with ``discovered=True`` and ``spine_id`` missing.
5. A spine lost and a new one formed close by, within the linking gate, are linked as one
   spine: consecutive detections of a track much farther apart than the detections of the
   other tracks between the same sessions, where either image shows no peak at the other's
   place, are two spines (:func:`split_jumps`).
6. A spine the linker left in two tracks (a link refused, e.g. by the dendrite gate where the
   tracings assign it to different dendrites) shows as a loss and a gain at one place: tracks
   at one place (within ``search_um``; in stacks at one depth), never present together, with
   no absence between them that the image confirms, are joined (:func:`join_fragments`).
7. The absences left are measured again: re-found ones count as present (``present=True``,
   ``refound=True``, ``spine_id`` missing); where even the light is below ``min_evidence``
   (nothing the detector would come near) the absence of a spine the image showed when
   detected (level ``>= min_seen_evidence``, twice the threshold) is confirmed (``absence_confirmed=True``):
   never bridged as a ``gap``, and a track present again after a confirmed absence is split
   there (a spine lost and a new one formed at its place, which gap closing had joined). In
   between, and for spines too faint to show (sub-resolution), the image does not decide: an
   absence between two presences of a track, confirmed in none of its sessions, is a ``gap``
   whatever its length (:func:`~imagingkit.tracking.fates.classify_fates`: the spine is back
   at its place and no image showed the place empty, as a human scorer would keep a spine
   missed from two tables running); an absence lasting to the last session is a loss. At the
   first and the last session, next to a presence, such an undecided absence is re-found where
   the light at the spine's own place (:func:`place_map`) is as the spine showed it when
   detected (``min_place_evidence``): there no later or earlier session can make it a gap.

The image cannot judge a position outside the session's traced dendrites (a stretch the
tracing missed; on 2D images the model reaches ``end_margin_um`` beyond a traced end, where
tracings stop short of a dendrite's last micrometres or the image border), inside the shaft
core, or within ``exclusion_um`` of another spine detected (or already re-found) in that
session (the residual there is the neighbour's; in stacks only a neighbour within
``join_depth_um`` in depth, the evidence being measured over ±1 plane): such absences stay
unchecked (a gap between two presences, a loss at the end). One place is re-found for one track only, in the final
check as in step 2 (two fragments of one spine's track would count it twice). Reviewed rows
are left as the reviewer set them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.cluster.hierarchy import DisjointSet
from scipy.spatial import cKDTree

from imagingkit.errors import ParameterError
from imagingkit.tracking.fates import FateParams, classify_fates
from imagingkit.tracking.review import clear_presence, fill_absent_positions, relink, split_track

#: ``evidence(session, points_yxz_ref) -> ratio``: evidence per reference-frame point in a session.
Evidence = Callable[[int, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class RecheckParams:
    """Parameters of the image check of absences (see the module docstring).

    Attributes
    ----------
    enabled : bool
        Check absences against the images when images are given.
    min_evidence : float
        Residual peak within ``search_um`` of the expected position, as a fraction of the
        detector's local threshold there, from which a missed spine counts as present; an
        absence is confirmed where even the light there stays below it. Lower re-finds
        dimmer spines but also calls noise a spine (a lost spine kept alive).
    relative_evidence : float
        A missed spine must also show this fraction of the peak evidence the same track has
        where it was detected (median over its detections, its level): 0.5 is the midpoint
        between "as seen before" and "nothing", so noise and shaft-model errors that reach
        ``min_evidence`` do not keep a bright spine alive after its loss.
    search_um : float
        Radius around the expected position searched for light and peaks, µm: about the
        residual registration error plus the spine's localisation scatter between sessions.
    exclusion_um : float
        No re-finding within this distance of another spine detected in that session.
    detach_um : float
        A detection this far from the median position of its track's other detections is cut
        out of the track before the check (:func:`detach_outliers`). 0 turns it off.
    min_seen_evidence : float
        An absence is confirmed only for a spine whose level (see ``relative_evidence``)
        reaches this: a spine the image hardly showed when present (sub-resolution, dim)
        shows just as little when missed, and its absence says nothing. 1.0 is the
        detector's own threshold (3.5 noise sigmas off the shaft's flank); at 2.0 a confirmed
        absence (below ``min_evidence``) is a drop of at least 5 sigmas from the spine's level,
        while a spine near threshold falls below ``min_evidence`` by noise alone (on simulated
        detected spines, 1.0 split such dim spines' tracks at chance dips: gain/loss F1 0.76 /
        0.82 against 0.78 / 0.84 at 2.0; unchanged from true positions).
    min_refound_fraction : float
        Missed spines are re-found only when at least this fraction of the judged absences of
        the first linking is re-found (:func:`refinding_pays`). Of the absences of spines truly
        gone, about 1 in 100 shows a peak that passes the thresholds (noise, a neighbour's
        flank; on simulated sessions at noise 1 and 2 alike, the evidence being in noise
        sigmas): at 0.05, at least four in five re-found spines are real. 0 always re-finds.
    jump_factor : float
        Consecutive detections of a track farther apart than ``search_um`` and this many times
        the median distance of consecutive detections between the same two sessions are
        checked for being two spines (:func:`split_jumps`); 0 turns it off.
    discover_min_evidence : float
        Peak evidence from which a spine the detector finds where no track is joins the
        tracking (:func:`discover_spines`); 0 turns discovery off. Of the detector's spines far
        from every track, those of spines the input missed show peaks well above the
        detector's threshold, those that no true spine explains rarely do.
    discover_min_refound_fraction : float
        Spines are discovered only when at least this fraction of the judged absences of the
        first linking is re-found (:func:`refound_fraction`): the tables are clearly
        incomplete. On simulated sessions, complete tables reach up to about 0.07 by chance
        (a few peaks of neighbours at lost spines' places), tables missing 10 % of the spines
        0.11 and more; a discovery in a complete table is always false.
    join_depth_um : float
        Fragments of a track at one lateral place are joined only if their mean depths agree
        within this (stacks; :func:`join_fragments`): about the axial width of the PSF, so a
        spine's depth scatter between sessions passes and spines of two dendrites crossing at
        different depths do not. Also what "one place" means in stacks for the other rules: a
        spine farther than this in depth does not crowd an absence (:func:`judge_absences`) nor
        share a re-found place (:func:`missed_spines`). On simulated stacks (192 x 192 x 21,
        development seeds 10-89, one left out whose registration check failed) against lateral
        distance only: 10 % missed gain / loss F1 0.899 / 0.910 -> 0.901 / 0.918, detected
        0.623 / 0.676 -> 0.627 / 0.676.
    end_margin_um : float
        The evidence maps model the image up to this far beyond a traced dendrite end
        (:class:`imagingkit.spines.model.ModelParams`; the detector's default leaves every
        pixel ahead of an end out, which left a spine beside a dendrite's last micrometres or
        near the image border, where tracings stop short, unjudged: NaN evidence). Where a
        spine was detected in another session, its place beside an end is worth measuring.
        On simulated detected spines (development seeds 10-49) 2.0 against 0: gain/loss F1
        0.778 / 0.839 -> 0.784 / 0.844; with 10 % missed unchanged (0.948 / 0.962 ->
        0.948 / 0.961). 2D images only: in stacks an end is mostly where a dendrite leaves the
        stack's depth or passes under another, and 2.0 cost (seeds 10-19, 10 % missed 0.911 /
        0.927 -> 0.900 / 0.914; detected 0.663 / 0.730 -> 0.659 / 0.722).
    min_place_evidence : float or None
        At the first and the last session, next to a presence of the track (where an absence is
        a gain or a loss: no earlier or later session can make it a gap), an absence that neither
        a peak re-finds nor the image confirms is re-found from the light at the spine's own
        place (:func:`place_map`, ``place_evidence``): at least this and ``relative_evidence``
        times the same measure where the track was detected (its median). A spine whose residual
        has no local maximum of its own near its place (a head close to the shaft, a peak just
        outside ``search_um``) shows there as it did when detected, and a fixed place does not
        pick the largest of many noisy pixels as the window's maximum does. 0.2 is about twice
        what noise alone averages there (negative residuals count as 0; three quarters of the
        spine search band lie below 0.17). On simulated sessions (development seeds 10-89,
        10 % missed), of such absences left open by the peak and light rules 36 were truly
        present and 152 absent; the place rule re-finds 23 and 8 (the peak inside the window
        did not separate them). In the middle of a series the same test re-found 19 absent
        against 6 present (a spine missed right before its loss is rare), so it is not used
        there. Gain / loss F1 with 10 % missed: seeds 10-49 0.948 / 0.961 -> 0.953 / 0.962,
        seeds 50-89 0.943 / 0.958 -> 0.948 / 0.963, warp 2 px / noise 1.5 (10-49) 0.927 /
        0.931 -> 0.931 / 0.939, stacks (10-89) 0.901 / 0.915 -> 0.903 / 0.922; detected
        spines (10-49) 0.784 / 0.844 -> 0.789 / 0.848; true positions unchanged.
        The same floor holds for every re-finding by a peak, anywhere in the series: a peak
        within ``search_um`` that leaves the place itself below it is a neighbour's or noise at
        the edge of the window. Of 2,593 re-found absences (development seeds 10-149, 10 %
        missed), 15 of the 69 false ones read below 0.2 at their place and 8 of the 2,524 true
        ones. Gain / loss F1: seeds 10-149 0.950 / 0.961 -> 0.954 / 0.963 (0.952 / 0.963 at a
        floor of 0.15, 0.955 / 0.963 at 0.3), warp 2 px / noise 1.5 0.931 / 0.939 -> 0.931 /
        0.941, detected spines 0.789 / 0.848 -> 0.790 / 0.849; true positions and warp 4 px /
        noise 2 unchanged. Stacks (10-89, the place read on the best plane within ±1, see
        :func:`place_map`): 10 % missed 0.903 / 0.922 -> 0.916 / 0.927, detected 0.639 / 0.684
        -> 0.638 / 0.682. None turns both off.
    discover_in_stacks : bool
        Discover spines in z-stacks too. Off by default: in stacks about half of the
        detector's spines far from every track are false (measured on simulated stacks,
        seeds 10-19: 3 of 6 discoveries real), and gain F1 with missed detections fell.
    presence_model : bool
        Where the tables miss spines (:func:`refinding_pays`), give the final verdict on every
        absence to the learned presence model (:mod:`imagingkit.tracking.presence`), which weighs
        these readings and the rules' verdicts together with the track around the absence. 2D
        images only (fitted on 2D series). Off: the rules above decide.
    """

    enabled: bool = True
    min_evidence: float = 0.6
    relative_evidence: float = 0.5
    search_um: float = 0.4
    exclusion_um: float = 0.8
    detach_um: float = 0.6
    jump_factor: float = 5.0
    min_seen_evidence: float = 2.0
    min_refound_fraction: float = 0.05
    discover_min_evidence: float = 3.0
    discover_min_refound_fraction: float = 0.1
    join_depth_um: float = 1.5
    end_margin_um: float = 2.0
    min_place_evidence: float | None = 0.2
    discover_in_stacks: bool = False
    presence_model: bool = True

    def __post_init__(self) -> None:
        if not self.min_evidence > 0 or self.relative_evidence < 0 or self.min_seen_evidence < 0:
            raise ParameterError(
                f"recheck.min_evidence must be > 0, relative_evidence and min_seen_evidence >= 0, got "
                f"{self.min_evidence}, {self.relative_evidence} and {self.min_seen_evidence}"
            )
        if self.min_place_evidence is not None and not self.min_place_evidence >= 0:
            raise ParameterError(
                f"recheck.min_place_evidence must be >= 0 or None (off), got {self.min_place_evidence}"
            )
        if self.discover_min_evidence < 0:
            raise ParameterError(
                f"recheck.discover_min_evidence must be >= 0 (0: off), got {self.discover_min_evidence}"
            )
        if not 0 <= self.min_refound_fraction <= 1 or not 0 <= self.discover_min_refound_fraction <= 1:
            raise ParameterError(
                f"recheck.min_refound_fraction and discover_min_refound_fraction must be in [0, 1], got "
                f"{self.min_refound_fraction} and {self.discover_min_refound_fraction}"
            )
        if (
            not self.search_um > 0
            or min(self.exclusion_um, self.detach_um, self.jump_factor, self.join_depth_um) < 0
            or not self.end_margin_um >= 0
        ):
            raise ParameterError(
                f"recheck.search_um must be > 0 µm, exclusion_um, detach_um, join_depth_um and end_margin_um "
                f">= 0 µm and jump_factor >= 0, got {self.search_um}, {self.exclusion_um}, {self.detach_um}, "
                f"{self.join_depth_um}, {self.end_margin_um} and {self.jump_factor}"
            )


def evidence_map(
    image: np.ndarray,
    pixel_size_um: float,
    z_step_um: float | None,
    trace=None,
    spine_params=None,
    end_margin_um: float | None = None,
) -> tuple[np.ndarray, tuple[float, ...]]:
    """Spine evidence per pixel of one image: detector score / the detector's local threshold.

    The score is the residual of the matched-filtered image over the shaft model in noise
    sigmas (:mod:`imagingkit.spines.model`); the threshold is the detector's base threshold
    there (higher on the shaft's flank, :meth:`imagingkit.spines.DetectParams.local_threshold`;
    in stacks the detector further adapts the flank threshold to a peak's depth asymmetry).
    1.0 is a peak the detector would accept; negative residuals count as 0. NaN where the image
    cannot say: outside the traced dendrites' spine search band, inside the shaft core, and
    more than ``end_margin_um`` beyond a traced end (None: the spine parameters' own
    ``model.end_margin_um``).

    Returns
    -------
    ratio : ndarray
        Same shape as ``image``.
    spacing_um : tuple of float
        Voxel (or pixel) size, µm.
    """
    from imagingkit.spines import SpineParams, prepare_image
    from imagingkit.spines.dendrite import trace_dendrites
    from imagingkit.spines.model import build_shaft_model

    params = spine_params or SpineParams()
    prepared = prepare_image(np.asarray(image, np.float32), pixel_size_um, z_step_um)
    trace = trace if trace is not None else trace_dendrites(prepared, params.trace)
    if trace.n_dendrites == 0:
        return np.full(prepared.data.shape, np.nan, np.float32), prepared.spacing_um
    model_params = params.model
    if end_margin_um is not None:
        model_params = dataclasses.replace(model_params, end_margin_um=end_margin_um)
    model = build_shaft_model(prepared, trace, model_params)
    dendrite = trace.centreline["dendrite_id"].to_numpy()
    radius_of_point = np.array([model.shaft_radius_um.get(int(d), 0.0) for d in dendrite])
    band = (model.nearest >= 0) & ~model.core & (model.distance_um <= params.model.max_distance_um)
    radius = np.where(band, radius_of_point[np.maximum(model.nearest, 0)], 0.0)
    threshold = params.detect.local_threshold(np.nan_to_num(model.rho) * radius, radius)
    with np.errstate(invalid="ignore"):
        ratio = np.where(band, np.maximum(np.nan_to_num(model.score, nan=0.0) / threshold, 0.0), np.nan)
    return ratio.astype(np.float32), prepared.spacing_um


def peaks_only(ratio: np.ndarray) -> np.ndarray:
    """An evidence map keeping its local maxima (3 x 3, in stacks 3 x 3 x 3 pixels); 0 elsewhere.

    The flank of a bright spine (or of a neck, a shaft bulge) reaches far into its
    surroundings; a place it covers only with its flank shows no spine of its own. Pixels
    outside the band (NaN) do not compete, as in the detector. NaN stays NaN.
    """
    finite = np.isfinite(ratio)
    filled = np.where(finite, ratio, -1.0)
    peak = finite & (filled >= ndi.maximum_filter(filled, size=3, mode="nearest"))
    return np.where(peak, ratio, np.where(finite, 0.0, np.nan))


def place_map(ratio: np.ndarray) -> np.ndarray:
    """An evidence map averaged over 3 x 3 pixels, unjudged pixels (NaN) as 0; in stacks the best plane within ±1.

    The light at a spine's own place, read at a point by :func:`evidence_here`: compared with
    the same reading where the spine was detected (see ``RecheckParams.min_place_evidence``).
    In stacks a track's depth (the mean of its detections) is known to about a plane, and the
    other evidence is measured over ±1 plane too (:func:`evidence_at`); averaging over the three
    planes instead read true spines low (on simulated stacks with detected spines, the floor
    ``min_place_evidence`` then cost gain / loss F1 0.639 / 0.684 -> 0.627 / 0.670, against
    0.638 / 0.682 with the best plane).
    """
    filled = np.nan_to_num(ratio, nan=0.0)
    if ratio.ndim == 3:
        lateral = ndi.uniform_filter(filled, size=(1, 3, 3), mode="nearest")
        return ndi.maximum_filter(lateral, size=(3, 1, 1), mode="nearest")
    return ndi.uniform_filter(filled, size=3, mode="nearest")


def evidence_here(place: np.ndarray, points_px: np.ndarray) -> np.ndarray:
    """A :func:`place_map` read at points (linear interpolation).

    ``points_px`` are ``(n, 2)`` (y, x) or ``(n, 3)`` (y, x, z) pixels of that map; a NaN depth
    reads the middle plane, as in :func:`evidence_at`. NaN for a point without y or x.
    """
    points_px = np.asarray(points_px, float)
    known = np.all(np.isfinite(points_px[:, :2]), axis=1)
    coords = np.nan_to_num(points_px[:, :2]).T
    if place.ndim == 3:
        depth = points_px[:, 2] if points_px.shape[1] > 2 else np.full(len(points_px), np.nan)
        coords = np.vstack([np.nan_to_num(depth, nan=place.shape[0] // 2), coords])
    return np.where(known, ndi.map_coordinates(place, coords, order=1, mode="nearest"), np.nan)


def evidence_at(ratio: np.ndarray, spacing_um: tuple[float, ...], points_px: np.ndarray, search_um: float):
    """Largest value of an evidence map within ``search_um`` (laterally; ±1 plane in stacks) of points.

    ``points_px`` are ``(n, 2)`` (y, x) or ``(n, 3)`` (y, x, z) pixels of that map. NaN where
    no pixel of the window can be judged (see :func:`evidence_map`).
    """
    points_px = np.asarray(points_px, float)
    out = np.full(len(points_px), np.nan)
    stack = ratio.ndim == 3
    pixel = np.asarray(spacing_um[-2:], float)
    ry, rx = (int(np.ceil(search_um / p)) for p in pixel)
    dy, dx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    disk = (dy * pixel[0]) ** 2 + (dx * pixel[1]) ** 2 <= search_um**2
    dy, dx = dy[disk], dx[disk]
    height, width = ratio.shape[-2:]
    for i, point in enumerate(points_px):
        if not np.all(np.isfinite(point[:2])):
            continue
        yy = np.clip(int(round(point[0])) + dy, 0, height - 1)
        xx = np.clip(int(round(point[1])) + dx, 0, width - 1)
        if stack:
            z = int(round(np.nan_to_num(point[2], nan=ratio.shape[0] // 2)))
            planes = np.arange(max(z - 1, 0), min(z + 2, ratio.shape[0]))
            window = ratio[planes[:, None], yy[None, :], xx[None, :]] if len(planes) else np.full(1, np.nan)
        else:
            window = ratio[yy, xx]
        if np.isfinite(window).any():
            out[i] = float(np.nanmax(window))
    return out


def detach_outliers(tracks: pd.DataFrame, pixel_size_um: float, max_um: float) -> pd.DataFrame:
    """Cut out of its track a detection far from where the track's other detections agree.

    When a spine is missed, the linker may take a neighbour's detection in its place (a wrong
    link that no distance gate can refuse). A detection farther than ``max_um`` from the median
    position of at least two other detections of its track becomes a track of its own; the
    image check then decides both. Rows keep their session; the new tracks get fresh ids.
    """
    detected = tracks["present"].to_numpy(bool) & tracks["spine_id"].notna().to_numpy()
    outliers = []  # (track_id, session)
    for track_id, rows in tracks[detected].groupby("track_id"):
        if len(rows) < 3 or max_um <= 0:
            continue
        points = rows[["y", "x"]].to_numpy(float) * pixel_size_um
        for k, session in enumerate(rows["session"].to_numpy(int)):
            if np.linalg.norm(points[k] - np.median(np.delete(points, k, axis=0), axis=0)) > max_um:
                outliers.append((int(track_id), int(session)))
    if not outliers:
        return tracks
    out, pieces = tracks.copy(), []
    next_id = int(tracks["track_id"].max()) + 1
    for new_id, (track_id, session) in enumerate(outliers, start=next_id):
        rows = out["track_id"] == track_id
        here = rows & (out["session"] == session)
        piece = out[rows].copy()
        piece["track_id"] = new_id
        clear_presence(piece, piece["session"] != session)
        pieces.append(piece)
        clear_presence(out, here)
    out = pd.concat([out, *pieces], ignore_index=True).sort_values(["track_id", "session"])
    changed = sorted({t for t, _ in outliers}) + list(range(next_id, next_id + len(outliers)))
    return fill_absent_positions(out.reset_index(drop=True), changed)


def _consecutive_links(tracks: pd.DataFrame, pixel_size_um: float) -> pd.DataFrame:
    """Consecutive detections of every track: ``track_id, session_a, session_b, length_um`` and positions."""
    detected = (
        tracks["present"].to_numpy(bool)
        & tracks["spine_id"].notna().to_numpy()
        & ~tracks["reviewed"].to_numpy(bool)
    )
    rows = tracks[detected].sort_values(["track_id", "session"])
    same = rows["track_id"].to_numpy()[1:] == rows["track_id"].to_numpy()[:-1]
    points = rows[["y", "x", "z"]].to_numpy(float)
    sessions = rows["session"].to_numpy(int)
    length = np.linalg.norm(points[1:, :2] - points[:-1, :2], axis=1) * pixel_size_um
    return pd.DataFrame(
        {
            "track_id": rows["track_id"].to_numpy()[1:][same],
            "session_a": sessions[:-1][same],
            "session_b": sessions[1:][same],
            "length_um": length[same],
            "point_a": list(points[:-1][same]),
            "point_b": list(points[1:][same]),
        }
    )


def split_jumps(
    tracks: pd.DataFrame, evidence: Evidence, pixel_size_um: float, params: RecheckParams, fates: FateParams
) -> pd.DataFrame:
    """Split a track between consecutive detections that the image shows are two spines.

    A spine lost and a new one formed close by (within the linking gate) are linked as one
    spine. A link between consecutive detections of a track is a jump when it is longer than
    ``search_um`` and ``jump_factor`` times the median link length between the same two
    sessions (the scatter of localisation and residual registration there). A jump is two
    spines when the image of either session shows no spine at the other's place (evidence
    below ``min_evidence``): the track is split at the later detection. Reviewed rows are
    not touched.
    """
    if params.jump_factor <= 0:
        return tracks
    links = _consecutive_links(tracks, pixel_size_um)
    if len(links) == 0:
        return tracks
    typical = links.groupby(["session_a", "session_b"])["length_um"].transform("median").to_numpy()
    limit = np.maximum(params.search_um, params.jump_factor * typical)
    cuts = []  # (track_id, session)
    for link in links[links["length_um"].to_numpy() > limit].itertuples():
        later_before = evidence(int(link.session_a), link.point_b[None])[0]
        earlier_after = evidence(int(link.session_b), link.point_a[None])[0]
        if min(later_before, earlier_after) < params.min_evidence:  # NaN: the image cannot say
            cuts.append((int(link.track_id), int(link.session_b)))
    for track_id, session in sorted(cuts, key=lambda cut: -cut[1]):  # later cuts first: ids stay valid
        tracks = split_track(tracks, track_id, session, fates)
    return tracks


def _depth_planes(params: RecheckParams, z_step_um: float | None) -> float | None:
    """``join_depth_um`` in planes of a stack (None in 2D: places are compared laterally only)."""
    return None if z_step_um is None else params.join_depth_um / z_step_um


def _same_depth(z: np.ndarray, z0: float, depth_planes: float | None) -> np.ndarray:
    """Which depths ``z`` (planes) lie within ``depth_planes`` of ``z0`` (all of them in 2D or without a depth)."""
    return np.ones(len(z), bool) if depth_planes is None else ~(np.abs(z - z0) > depth_planes)


def _near_spine(
    tracks: pd.DataFrame, rows: np.ndarray, session: int, radius_px: float, depth_planes: float | None = None
) -> np.ndarray:
    """Per row in ``rows``: is another track present (detected or re-found) in ``session`` within
    ``radius_px`` (in stacks also within ``depth_planes``)? Absent rows are never present, so the
    row's own track does not count."""
    here = tracks[(tracks["session"] == session) & tracks["present"]]
    if len(here) == 0 or radius_px <= 0:
        return np.zeros(len(rows), bool)
    near = cKDTree(here[["y", "x"]].to_numpy(float)).query_ball_point(
        tracks.loc[rows, ["y", "x"]].to_numpy(float), radius_px
    )
    z_here, z_rows = here["z"].to_numpy(float), tracks.loc[rows, "z"].to_numpy(float)
    return np.array(
        [_same_depth(z_here[hits], z, depth_planes).any() for hits, z in zip(near, z_rows, strict=True)], bool
    )


def measure_evidence(
    tracks: pd.DataFrame,
    evidence: Evidence,
    peak_evidence: Evidence | None = None,
    place_evidence: Evidence | None = None,
) -> pd.DataFrame:
    """Add ``evidence`` and ``peak_evidence`` (and ``place_evidence``) to every in-view, unreviewed row of a track table.

    ``evidence`` measures any light above the shaft model near the row's position,
    ``peak_evidence`` only local maxima (:func:`peaks_only`; the same as ``evidence`` when not
    given), ``place_evidence`` the light at the position itself (:func:`place_map`; the column
    only when given). NaN where not measured.
    """
    out = tracks.copy()
    out["evidence"] = np.nan
    out["peak_evidence"] = np.nan
    if place_evidence is not None:
        out["place_evidence"] = np.nan
    rows_ok = out["in_view"].to_numpy(bool) & ~out["reviewed"].to_numpy(bool)
    sessions = out["session"].to_numpy(int)
    for session in np.unique(sessions[rows_ok]):
        rows = out.index[rows_ok & (sessions == session)].to_numpy()
        points = out.loc[rows, ["y", "x", "z"]].to_numpy(float)
        light = np.asarray(evidence(int(session), points), float)
        out.loc[rows, "evidence"] = light
        peak = light if peak_evidence is None else np.asarray(peak_evidence(int(session), points), float)
        out.loc[rows, "peak_evidence"] = peak
        if place_evidence is not None:
            out.loc[rows, "place_evidence"] = np.asarray(place_evidence(int(session), points), float)
    return out


def judge_absences(
    tracks: pd.DataFrame, pixel_size_um: float, params: RecheckParams, z_step_um: float | None = None
) -> pd.DataFrame:
    """Per absent, in-view, unreviewed row with evidence: ``judged``, ``found`` and ``confirmed`` (bool columns).

    A row is judged where the image can say (finite evidence, no other spine detected or
    re-found within ``exclusion_um``; in stacks, ``z_step_um`` given, only one within
    ``join_depth_um`` in depth is in the way: the evidence is measured over ±1 plane).
    ``found``: a peak (``peak_evidence``) ``>= min_evidence`` and ``>= relative_evidence`` times
    the track's level (median ``peak_evidence`` of its detections) — the flank of a neighbour
    or a dendrite reaching the place is no spine — and, with ``place_evidence`` measured, light
    at the place itself ``>= min_place_evidence`` (a peak at the edge of the search window
    beside a dark place is a neighbour's or noise);
    ``confirmed`` (absent): no light at all (``evidence`` below ``min_evidence``) where the
    track's level reaches ``min_seen_evidence`` (a spine the image showed when present). In
    between the image does not decide, except at the first and the last session next to a
    presence of the track, with ``place_evidence`` measured: there an absence not confirmed is
    ``found`` where the light at the place reaches ``min_place_evidence`` and
    ``relative_evidence`` times its median where the track was detected.
    """
    detected = tracks["present"].to_numpy(bool) & tracks["spine_id"].notna().to_numpy()
    peak = tracks["peak_evidence"] if "peak_evidence" in tracks else tracks["evidence"]
    level = _level_when_detected(peak, detected, tracks["track_id"])
    todo = (
        ~tracks["present"].to_numpy(bool)
        & tracks["in_view"].to_numpy(bool)
        & ~tracks["reviewed"].to_numpy(bool)
        & np.isfinite(tracks["evidence"].to_numpy(float))
    )
    judged = np.zeros(len(tracks), bool)
    sessions = tracks["session"].to_numpy(int)
    depth = _depth_planes(params, z_step_um)
    for session in np.unique(sessions[todo]):
        rows = np.flatnonzero(todo & (sessions == session))
        crowded = _near_spine(
            tracks, tracks.index[rows], int(session), params.exclusion_um / pixel_size_um, depth
        )
        judged[rows[~crowded]] = True
    value = peak.to_numpy(float)
    found = judged & (value >= np.fmax(params.min_evidence, params.relative_evidence * level))
    visible = level >= params.min_seen_evidence  # NaN (never detected): the image cannot say
    confirmed = judged & visible & (tracks["evidence"].to_numpy(float) < params.min_evidence)
    if params.min_place_evidence is not None and "place_evidence" in tracks:
        place = tracks["place_evidence"].to_numpy(float)
        found &= ~(place < params.min_place_evidence)  # a peak beside a dark place
        place_level = _level_when_detected(tracks["place_evidence"], detected, tracks["track_id"])
        bar = np.fmax(params.min_place_evidence, params.relative_evidence * place_level)
        at_end = _at_series_end_next_to_presence(tracks)
        found |= judged & ~confirmed & at_end & (place >= bar)
    return tracks.assign(judged=judged, found=found, confirmed=confirmed)


def _level_when_detected(values: pd.Series, detected: np.ndarray, track_id: pd.Series) -> np.ndarray:
    """Per row: the median of ``values`` over its track's detected rows (NaN for a track never detected)."""
    return values.where(detected).groupby(track_id).transform("median").to_numpy()


def _at_series_end_next_to_presence(tracks: pd.DataFrame) -> np.ndarray:
    """Per row: in the first session with its track present in the second, or in the last with it present in the one before."""
    sessions = tracks["session"].to_numpy(int)
    track = tracks["track_id"].to_numpy()
    first, last = sessions.min(), sessions.max()
    neighbour = np.where(sessions == first, first + 1, np.where(sessions == last, last - 1, -1))
    present = pd.Series(tracks["present"].to_numpy(bool), index=pd.MultiIndex.from_arrays([track, sessions]))
    there = present.reindex(pd.MultiIndex.from_arrays([track, neighbour]), fill_value=False).to_numpy(bool)
    return (neighbour >= 0) & there


def refinding_pays(judged: pd.DataFrame, params: RecheckParams) -> bool:
    """Does the image re-find missed spines more often than chance (a table from :func:`judge_absences`)?

    True when at least ``min_refound_fraction`` of the judged absences are ``found``. Where the
    input misses spines (a detector's misses, 10 % dropped), a tenth to a third of the judged
    absences are re-found; where it misses none (a complete table), only the chance peaks at
    places of spines truly gone are, about 1 in 100, and each would move a loss.
    """
    n_judged = int(judged["judged"].sum())
    return n_judged > 0 and judged["found"].sum() >= params.min_refound_fraction * n_judged


def refound_fraction(judged: pd.DataFrame) -> float:
    """Fraction of the judged absences that are ``found`` (a table from :func:`judge_absences`); 0 if none."""
    n_judged = int(judged["judged"].sum())
    return float(judged["found"].sum() / n_judged) if n_judged else 0.0


def missed_spines(
    tracks: pd.DataFrame, pixel_size_um: float, params: RecheckParams, z_step_um: float | None = None
) -> pd.DataFrame:
    """Rows re-found by :func:`judge_absences`, one per place: of re-found positions closer than
    ``exclusion_um`` in one session (one spine seen from two fragments of its track; in stacks,
    ``z_step_um`` given, also within ``join_depth_um`` in depth), the one with the strongest evidence."""
    column = "peak_evidence" if "peak_evidence" in tracks else "evidence"
    found = tracks[tracks["found"]].sort_values(column, ascending=False)
    depth = _depth_planes(params, z_step_um)
    keep = []
    for _, rows in found.groupby("session"):
        points = rows[["y", "x"]].to_numpy(float) * pixel_size_um
        z = rows["z"].to_numpy(float)
        taken = np.zeros(len(rows), bool)
        tree = cKDTree(points) if len(points) else None
        for i in range(len(rows)):
            if not taken[i]:
                keep.append(rows.index[i])
                hits = np.asarray(tree.query_ball_point(points[i], params.exclusion_um), int)
                taken[hits[_same_depth(z[hits], z[i], depth)]] = True
    return found.loc[keep].sort_values(["session", "track_id"])


def discover_spines(
    candidates: Sequence[np.ndarray],
    tracks: pd.DataFrame,
    peak_evidence: Evidence,
    pixel_size_um: float,
    params: RecheckParams,
) -> pd.DataFrame:
    """Spines found on the images where no track is (step 3 of the module docstring).

    Parameters
    ----------
    candidates : sequence of ndarray
        Per session, the spines the detector finds on that session's image, ``(n, 3)``
        reference-frame pixels ``y, x, z`` (z NaN in 2D).
    tracks : DataFrame
        A track table (one row per track per session; absent rows at the track's position).
    peak_evidence : callable
        ``peak_evidence(session, points_ref)`` (:func:`peaks_only` of :func:`evidence_map`).
    pixel_size_um : float
    params : RecheckParams

    Returns
    -------
    DataFrame
        ``session, y, x, z, peak_evidence`` of the candidates farther than ``exclusion_um``
        (laterally) from every track's position in their session with a peak evidence
        ``>= discover_min_evidence``; empty when ``discover_min_evidence`` is 0.
    """
    columns = ["session", "y", "x", "z", "peak_evidence"]
    parts = []
    for session, points in enumerate(candidates):
        points = np.asarray(points, float).reshape(-1, 3)
        if params.discover_min_evidence <= 0 or len(points) == 0:
            continue
        here = tracks.loc[tracks["session"] == session, ["y", "x"]].to_numpy(float)
        far = np.ones(len(points), bool)
        if len(here):
            far = cKDTree(here).query(points[:, :2])[0] * pixel_size_um > params.exclusion_um
        points = points[far]
        value = np.asarray(peak_evidence(session, points), float) if len(points) else np.zeros(0)
        keep = np.nan_to_num(value, nan=0.0) >= params.discover_min_evidence
        found = pd.DataFrame(points[keep], columns=["y", "x", "z"]).assign(peak_evidence=value[keep])
        parts.append(found.assign(session=session)[columns])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def join_fragments(
    tracks: pd.DataFrame,
    pixel_size_um: float,
    params: RecheckParams,
    fates: FateParams = FateParams(),
    z_step_um: float | None = None,
) -> pd.DataFrame:
    """Join tracks that are fragments of one spine (a track table with ``evidence``).

    Where the linker leaves a spine in two tracks (a link refused, e.g. by the dendrite gate
    where the session's tracing assigns the spine to another dendrite than the reference's,
    near a junction or a crossing, or across a session out of view), each fragment's absences
    lie at the other's detections: too close to be judged, they count as a loss and a gain.
    Two tracks are one spine when their present positions agree within ``search_um`` (the
    spine's scatter between sessions), they are never present in the same session, and in no
    session between their first and last presence, where neither is present, does the image
    confirm the absence (:func:`judge_absences`: a spine lost and a new one formed at its
    place are two spines). The dendrites the tracings assign do not decide (at one place they
    are one spine whatever the tracing says), depth does: in stacks (``z_step_um`` given) two
    fragments whose mean depths differ by more than ``join_depth_um`` are spines of dendrites
    crossing at different depths, one lost and one formed at the same lateral place. Closest
    pairs first; reviewed tracks are left alone.
    """
    if params.search_um <= 0 or len(tracks) == 0:
        return tracks
    confirmed = judge_absences(tracks, pixel_size_um, params, z_step_um)["confirmed"].to_numpy(bool)
    present = tracks["present"].to_numpy(bool)
    reviewed = tracks.groupby("track_id")["reviewed"].transform("any").to_numpy(bool)
    shown = tracks[present & ~reviewed]
    if shown["track_id"].nunique() < 2:
        return tracks
    place = shown.groupby("track_id")[["y", "x"]].mean()
    depth_um = shown.groupby("track_id")["z"].mean() * (z_step_um if z_step_um is not None else np.nan)
    sessions = {t: set(rows["session"]) for t, rows in shown.groupby("track_id")}
    empty = {t: set(rows["session"]) for t, rows in tracks[confirmed].groupby("track_id")}
    tree = cKDTree(place.to_numpy(float) * pixel_size_um)
    pairs = sorted(
        tree.query_pairs(params.search_um, output_type="ndarray").tolist(),
        key=lambda p: np.linalg.norm(place.iloc[p[0]] - place.iloc[p[1]]),
    )
    groups = DisjointSet(int(t) for t in place.index)  # a joined group is named by its root track
    joins = []
    for i, j in pairs:
        a, b = groups[int(place.index[i])], groups[int(place.index[j])]
        if a == b or sessions[a] & sessions[b]:
            continue
        if abs(depth_um[a] - depth_um[b]) > params.join_depth_um:  # NaN (2D): no depth to compare
            continue
        both = sessions[a] | sessions[b]
        between = set(range(min(both), max(both) + 1)) - both
        if between & (empty.get(a, set()) | empty.get(b, set())):
            continue
        groups.merge(a, b)
        keep = groups[a]
        merge = b if keep == a else a
        sessions[keep] = both
        empty[keep] = empty.get(a, set()) | empty.get(b, set())
        joins.append((keep, merge))
    for keep, merge in joins:
        tracks = relink(tracks, keep, merge, fates)
    return tracks


def _split_after_confirmed_absence(tracks: pd.DataFrame, fates: FateParams) -> pd.DataFrame:
    """Split tracks that are present again after an image-confirmed absence (a new spine)."""
    confirmed = tracks["absence_confirmed"].to_numpy(bool) & ~tracks["present"].to_numpy(bool)
    for track_id in tracks.loc[confirmed, "track_id"].unique():
        while True:
            rows = tracks[tracks["track_id"] == track_id].sort_values("session")
            present = rows["present"].to_numpy(bool)
            checked = rows["absence_confirmed"].to_numpy(bool) & ~present
            seen = np.flatnonzero(present)
            starts = [s for s in seen[1:] if not present[s - 1] and checked[seen[0] : s].any()]
            if not starts:
                break
            tracks = split_track(tracks, int(track_id), int(rows["session"].to_numpy()[starts[0]]), fates)
            track_id = int(tracks["track_id"].max())  # the remainder may need splitting again
    return tracks


def confirm_absences(
    tracks: pd.DataFrame,
    pixel_size_um: float,
    params: RecheckParams = RecheckParams(),
    fates: FateParams = FateParams(),
    refind: bool = True,
    z_step_um: float | None = None,
) -> pd.DataFrame:
    """Final check (step 7 of the module docstring) of a track table with ``evidence``.

    Re-found rows are one per place (:func:`missed_spines`); none without ``refind`` (the input
    misses no spines, see :func:`refinding_pays`): absences are then only confirmed.
    ``z_step_um``: the plane spacing of stacks (None: 2D), for :func:`judge_absences`.

    Returns
    -------
    DataFrame
        The table with ``refound`` (present from the image) and ``absence_confirmed`` (the image
        judged the absence) updated, tracks split after confirmed absences, states and fates
        recomputed.
    """
    judged = judge_absences(tracks, pixel_size_um, params, z_step_um)
    out = tracks.copy()
    if "refound" not in out:
        out["refound"] = False
    out["absence_confirmed"] = judged["confirmed"].to_numpy()
    one_per_place = missed_spines(judged, pixel_size_um, params, z_step_um).index
    found = judged.index.isin(one_per_place) & refind
    out.loc[found, "present"] = True
    out.loc[found, "refound"] = True
    out = _split_after_confirmed_absence(out, fates)
    out["refound"] = out["refound"].astype(bool) & out["present"].astype(bool)
    return classify_fates(out, fates)
