"""Motion correction within a session and registration across sessions.

Within a session: :func:`register_movie` (rigid or piecewise-rigid, streamed,
bidirectional-phase correction, bad-frame flags, quality metrics; built-in or
suite2p engine). Across sessions: :func:`register_sessions` returns
:class:`SessionTransform` objects that map points both ways and warp images.
"""

from imagingkit.motion.bidi import correct_bidi_phase, estimate_bidi_phase
from imagingkit.motion.flags import FrameFlags, read_frame_flags
from imagingkit.motion.params import NonRigidParams, RigidParams
from imagingkit.motion.reference import compute_reference
from imagingkit.motion.rigid import estimate_rigid_shifts, shift_frames
from imagingkit.motion.sessions import SessionParams, SessionTransform, register_sessions
from imagingkit.motion.stream import RegistrationResult, estimate_shifts, register_movie

__all__ = [
    "FrameFlags",
    "read_frame_flags",
    "NonRigidParams",
    "RegistrationResult",
    "RigidParams",
    "SessionParams",
    "SessionTransform",
    "compute_reference",
    "correct_bidi_phase",
    "estimate_bidi_phase",
    "estimate_rigid_shifts",
    "estimate_shifts",
    "register_movie",
    "register_sessions",
    "shift_frames",
]
