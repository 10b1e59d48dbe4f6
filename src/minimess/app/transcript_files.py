"""Which file a client's transcript goes to: `--log-file`, `<uid>.mess`, or, while other clients
of the same uid hold that, the first free `<uid>+2.mess`, `<uid>+3.mess`, …"""

from __future__ import annotations

from pathlib import Path

from minimess.app.transcript import Transcript, TranscriptInUse
from minimess.domain.model import Uid

# Clients of one uid in one directory that get a transcript of their own; one more is refused.
MAX_CLIENTS = 99


def open_transcript(uid: Uid, log_file: str | None) -> Transcript:
    """The transcript opened and locked: `log_file` if given, else the first free default name.

    An explicit `log_file` held by another client raises TranscriptInUse: the user named that
    file, and another one would be found nowhere they look. Without one, two terminals of one
    user must both work, so the second writes `<uid>+2.mess` (`+` is in no uid, so the name is
    no other uid's transcript). Raises OSError when a file cannot be written.
    """
    if log_file is not None:
        transcript = Transcript(Path(log_file))
        transcript.open()
        return transcript
    first = Path(f"{uid}.mess")
    for number in range(1, MAX_CLIENTS + 1):
        path = first if number == 1 else Path(f"{uid}+{number}.mess")
        transcript = Transcript(path, instead_of=None if number == 1 else first)
        try:
            transcript.open()
        except TranscriptInUse:
            continue
        return transcript
    raise TranscriptInUse(
        f"{first} and {MAX_CLIENTS - 1} more transcript files of {uid} are in use by other clients"
    )
